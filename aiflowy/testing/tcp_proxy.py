"""A loopback TCP proxy whose far side can be cut: a dependency outage for tests.

`TcpProxy(target_port).start()` forwards every connection to `127.0.0.1:target_port`;
`outage()` drops the connections it carries and then accepts new ones without ever answering
(a host that went silent: the worst case for a client without timeouts); `recover()` forwards
again. Point a server's `DATABASE_URL` or `REDIS_URL` at `proxy.port`.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = False
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def outage(self) -> None:
        self.down = True
        with self.lock:
            doomed, self.sockets = self.sockets, set()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def recover(self) -> None:
        with self.lock:
            silent, self.sockets = self.sockets, set()
        for sock in silent:  # the connections accepted during the outage
            sock.close()
        self.down = False

    def stop(self) -> None:
        self.outage()
        self.listener.close()

    def _keep(self, *socks: socket.socket) -> None:
        with self.lock:
            self.sockets.update(socks)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                self._keep(client)  # accepted, never answered
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._keep(client, upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
