"""What the Python bench scripts share: a free loopback port, and waiting until
something listens on one. Imported by soak.py and the kill_*.py scripts (they
run as `python3 bench/NAME.py`, so this directory is on sys.path)."""
import socket
import time


def free_port():
    """A port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=30):
    """True once 127.0.0.1:port accepts a connection, False after `timeout` s."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False
