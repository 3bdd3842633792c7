"""The lab for real programs: the module is the only way out.

* a server namespace (``ip netns add``, a unique name per run): the remote side's
  addresses (198.51.100.0/24) on its own loopback device, the servers of remote.py,
  mosquitto, redis-server, and the emulator (``wizsock emulator --pty``), whose world
  file maps the lab's names to those addresses;
* each program in a namespace of its own with only loopback (``unshare -n``), run
  unmodified under ``wizsock run --port <the emulator's pty>``.

Everything is torn down (processes killed, namespace deleted) whatever happens.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import remote  # noqa: E402  (addresses and names shared with the servers)

BAUD = 2000000
AP = ("wizsock-lab", "wizsock123")


class LabError(RuntimeError):
    pass


def capability_problem():
    """Why the lab cannot run here (None if it can)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "the lab needs root (ip netns add)"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (iproute2 / util-linux)"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"unshare -n failed: {probe.stderr.decode().strip()}"
    return None


#: the emulator's benign glitches (issue 17): output cut at random bytes, harmless URCs,
#: busy bursts, 30 ms round trips; programs must pass as on a clean module
GLITCH = ("--faults", "chunk,urc:0.2,busy:0.1", "--rtt", "30")


class Lab:
    def __init__(self, baud=BAUD, emulator_args=(), log=False, emulator_log=None):
        """`baud`: the UART's rate; `emulator_args`: more `wizsock emulator` options
        (``--faults``, ``--rtt``); `log`: the emulator's exact UART log (``--log``) goes to
        the file ``self.transcript`` (`emulator_log`: its path, for a failure's post-mortem;
        default: in the lab's folder)."""
        self.baud = baud
        self.emulator_args = list(emulator_args)
        self.log = log or emulator_log is not None
        self.emulator_log = emulator_log
        self.transcript = None
        self.ns = f"wzh9-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.dir = tempfile.mkdtemp(prefix="wizsock-lab-")
        self.procs: list[subprocess.Popen] = []
        self.pty = None
        self.ca = None
        self.wheel = None
        self._ns_made = False

    # -- set-up / tear-down ----------------------------------------------------------
    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _ip(self, *args):
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def in_ns(self, *cmd):
        return ["ip", "netns", "exec", self.ns, *cmd]

    def _spawn(self, cmd, **kw):
        kw.setdefault("stderr", subprocess.PIPE)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def _start(self):
        self._ip("netns", "add", self.ns)
        self._ns_made = True
        self._ip("netns", "exec", self.ns, "ip", "link", "set", "lo", "up")
        for ip in sorted(set(remote.ADDR.values())):
            self._ip("netns", "exec", self.ns, "ip", "addr", "add", f"{ip}/32", "dev", "lo")
        world = {
            "aps": [{"ssid": AP[0], "password": AP[1], "ecn": 3, "rssi": -45,
                     "mac": "00:08:dc:5a:1a:01", "channel": 6, "ip": "192.168.10.23",
                     "gateway": "192.168.10.1", "netmask": "255.255.255.0"}],
            "dns": dict(remote.NAMES),
        }
        self.world = os.path.join(self.dir, "world.json")
        with open(self.world, "w") as f:
            json.dump(world, f)
        srv = self._spawn(self.in_ns(sys.executable, os.path.join(HERE, "remote.py"), self.dir))
        info = json.loads(self._first_line(srv, "remote.py"))
        self.ca, self.wheel = info["ca"], info["wheel"]
        self._wait_port(remote.ADDR["h2"], 443, srv, "the HTTP/2 server (hypercorn)")
        self._start_mosquitto()
        self._start_redis()
        argv = ["--world", self.world, "--baud", str(self.baud), *self.emulator_args]
        if self.log:
            self.transcript = self.emulator_log or os.path.join(self.dir, "emulator.log")
            argv += ["--log", self.transcript]
        emu = self._spawn(self.in_ns(sys.executable, "-m", "wizsock", "emulator", "--pty", *argv))
        line = self._first_line(emu, "wizsock emulator")
        self.pty = line.split(" on ", 1)[1].split()[0]

    def _first_line(self, proc, what, timeout=30):
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise LabError(f"{what} did not start: {proc.stderr.read1(4096) if proc.stderr and proc.poll() is not None else ''}")
        line = proc.stdout.readline().decode().strip()
        if not line:
            raise LabError(f"{what} failed: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        return line

    def _wait_port(self, ip, port, proc, what, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run(self.in_ns(sys.executable, "-c",
                                          f"import socket; socket.create_connection(('{ip}', {port}), 1).close()"),
                               capture_output=True)
            if r.returncode == 0:
                return
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        raise LabError(f"{what} did not listen on {ip}:{port}")

    def _start_mosquitto(self):
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener 1883 {remote.ADDR['mqtt']}\nallow_anonymous true\npersistence false\n"
                    "user root\n")
        p = self._spawn(self.in_ns(binary, "-c", conf))
        self._wait_port(remote.ADDR["mqtt"], 1883, p, "mosquitto")

    def _start_redis(self):
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        p = self._spawn(self.in_ns(binary, "--bind", remote.ADDR["redis"], "--port", "6379",
                                   "--save", "", "--appendonly", "no", "--dir", self.dir,
                                   "--protected-mode", "no"))
        self._wait_port(remote.ADDR["redis"], 6379, p, "redis-server")

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in reversed(self.procs):
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            for stream in (p.stdout, p.stderr):
                if stream:
                    stream.close()
        self.procs.clear()
        if self._ns_made:
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
            self._ns_made = False
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- programs --------------------------------------------------------------------
    def client_command(self, argv, *, isolate_only=False):
        """``argv`` (a python program) under wizsock run, in a fresh namespace with only loopback."""
        run = [sys.executable, "-m", "wizsock", "run", "--port", self.pty, "--baudrate", str(self.baud),
               "--ssid", AP[0], "--", *argv]
        return ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *run]

    def env(self):
        env = dict(os.environ)
        env.update(SSL_CERT_FILE=self.ca, REQUESTS_CA_BUNDLE=self.ca, WIZSOCK_PASSWORD=AP[1],
                   PYTHONUNBUFFERED="1", PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        return env

    def run(self, argv, timeout=120, **extra_env):
        """Run a client program to completion: CompletedProcess (text)."""
        env = self.env()
        env.update(extra_env)
        proc = subprocess.run(self.client_command(argv), env=env, capture_output=True,
                              text=True, timeout=timeout, cwd=self.dir)
        proc.emulator_args = self.emulator_args     # a failure names the seed to replay it
        return proc

    def start(self, argv):
        """Start a client program (a server on the module): Popen (text), killed by close()."""
        p = subprocess.Popen(self.client_command(argv), env=self.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=self.dir)
        self.procs.append(p)
        return p

    def outside(self, code, timeout=60):
        """Python code run in the server namespace (the far side)."""
        return subprocess.run(self.in_ns(sys.executable, "-c", code), capture_output=True,
                              text=True, timeout=timeout)
