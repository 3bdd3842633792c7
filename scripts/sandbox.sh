# Sourced by scripts/front-door, scripts/stock-check and scripts/release-check: the pieces
# of a new user's machine they build, and how a run of the README's command is judged.

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

# registry_passthrough: sets the array `passthrough` to NAME=VALUE for this machine's
# registry access settings (proxy, CA bundle, index, pip's timeout): they are not
# interpreters, so they pass into a clean environment; everything else (VIRTUAL_ENV,
# PYENV_*, CONDA_*, PYTHONPATH, ...) does not.
registry_passthrough() {
    local var
    passthrough=()
    for var in $(compgen -e); do
        case $var in
            http_proxy|https_proxy|no_proxy|HTTP_PROXY|HTTPS_PROXY|NO_PROXY|SSL_CERT_FILE|SSL_CERT_DIR|\
            PIP_CERT|PIP_INDEX_URL|PIP_EXTRA_INDEX_URL|PIP_FIND_LINKS|PIP_TRUSTED_HOST|PIP_DEFAULT_TIMEOUT|\
            PIP_DISABLE_PIP_VERSION_CHECK)
                passthrough+=("$var=${!var}") ;;
        esac
    done
}

# demo_answered CHECK WHO LOG RC WANT_NOTICES SECONDS: did the README's command, run as
# WHO with its output in LOG (first line: `command -v python3`), end with the demo's
# answer on /usr/bin/python3, saying WANT_NOTICES (0 or 1) times that the framer is the
# pure-Python one, with nothing a compiler or PEP 668 prints? Says so; returns 1 if not.
demo_answered() {
    local check=$1 who=$2 log=$3 rc=$4 want=$5 elapsed=$6 notices python
    python=$(head -n 1 "$log")
    notices=$(grep -c 'compiled framer was not built' "$log" || true)
    if [ "$rc" != 0 ] || [ "$python" != /usr/bin/python3 ] || ! grep -q -- '-> 200 OK, .* TLS verified' "$log" \
            || [ "$notices" != "$want" ] \
            || grep -qE 'Traceback|Python\.h|the compiler is hidden|error: command|fatal error|externally-managed' "$log"; then
        echo "$check: FAILED as $who (exit $rc, python3 = $python, framer notices $notices, want $want); its output:" >&2
        sed 's/^/    /' "$log" >&2
        return 1
    fi
    echo "$check: as $who: the README's command ended with the demo's answer in ${elapsed} s" \
         "(python3 = $python, $( [ "$want" = 0 ] && echo compiled framer || echo 'no compiler: pure-Python framer, one notice'))"
}

# run_readme_command CHECK WHO HOME PATH DIR LOG: the README's command ($cmd) in DIR as WHO
# (root, or an ordinary user through runuser) in a clean environment (env -i: HOME, PATH,
# a UTF-8 locale and the registry settings in $passthrough, nothing else), bounded by
# $timeout_s, its output in LOG after `command -v python3`. The array `door_prefix` goes
# first (stock-check: `chroot ROOT`). Sets `elapsed` (seconds); returns the command's status.
run_readme_command() {
    local check=$1 who=$2 home=$3 path=$4 dir=$5 log=$6 start end rc=0
    local -a as_who=()
    [ "$who" = root ] || as_who=(runuser -u "$who" --)
    start=$(date +%s.%N)
    timeout --kill-after=10 "$timeout_s" "${door_prefix[@]}" "${as_who[@]}" \
        env -i "HOME=$home" "USER=$who" "LOGNAME=$who" "PATH=$path" LANG=C.UTF-8 "${passthrough[@]}" \
        bash -c "cd \"\$1\" && command -v python3 >&2 && $cmd" "$check" "$dir" >"$log" 2>&1 || rc=$?
    end=$(date +%s.%N)
    elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    return $rc
}

# system_python_clean CHECK WHO HOME: after the command, /usr/bin/python3 run as WHO (in
# `door_prefix`) still cannot import wizsock: nothing reached the system's site-packages,
# nor WHO's ~/.local by `pip --user`. Says so; returns 1 if it can.
system_python_clean() {
    local check=$1 who=$2 home=$3
    if "${door_prefix[@]}" runuser -u "$who" -- env -i "HOME=$home" PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            bash -c 'cd / && exec /usr/bin/python3 -c "import wizsock"' >/dev/null 2>&1; then
        echo "$check: FAILED: /usr/bin/python3 imports wizsock as $who: the command installed outside its venv" >&2
        return 1
    fi
    echo "$check: as $who: /usr/bin/python3 does not import wizsock (nothing installed outside .venv)"
}
