# Sourced by scripts/front-door and scripts/release-check: the two pieces of a new user's
# machine they both build.

# clean_copy CHECKOUT DEST: what a clone of CHECKOUT has, as in its work tree (tracked
# files and new ones git does not ignore): no .venv, build/, compiled framer or egg-info.
clean_copy() {
    mkdir -p "$2"
    (cd "$1" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar --null -cf - -T -) | tar -xf - -C "$2"
}

# hide_compiler DIR: fills DIR with failing stand-ins for every name a build looks a C
# compiler up by (this Python's CC too); DIR first on PATH is a machine without one, as a
# stock Debian or Ubuntu is.
hide_compiler() {
    local cc python python_cc=()
    mkdir -p "$1"
    for python in python3 /usr/bin/python3; do
        command -v "$python" >/dev/null || continue
        python_cc+=("$("$python" -c 'import sysconfig; print((sysconfig.get_config_var("CC") or "cc").split()[0])')")
    done
    for cc in cc gcc c99 clang x86_64-linux-gnu-gcc "${python_cc[@]}"; do
        printf '#!/bin/sh\necho "%s: not installed (a stand-in: the compiler is hidden)" >&2\nexit 127\n' \
            "$cc" > "$1/$cc"
        chmod 755 "$1/$cc"
    done
    chmod a+rx "$1"
}
