# PyInstaller runtime hook, inert unless RADLENS_FORBID_NETWORK names a file: then every attempt
# to resolve a host name or open an internet socket is written to that file and refused.
# packaging/smoke_test.py sets it to prove the frozen app never reaches the network.
import os

_attempts_file = os.environ.get("RADLENS_FORBID_NETWORK")
if _attempts_file:
    import socket
    import traceback

    def _refused(what, detail):
        with open(_attempts_file, "a", encoding="utf-8") as out:
            out.write(f"{what} {detail!r}\n{''.join(traceback.format_stack(limit=10))}\n")
        return OSError(f"RadLens offline check: {what} refused")

    def _no_name_lookup(host, *args, **kwargs):
        raise _refused("getaddrinfo", host)

    _connect = socket.socket.connect

    def _no_internet_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise _refused("connect", address)
        return _connect(self, address)

    socket.getaddrinfo = _no_name_lookup
    socket.socket.connect = _no_internet_connect
    socket.socket.connect_ex = _no_internet_connect
