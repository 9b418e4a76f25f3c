"""The HTTP server of every exporter (and of the admin): cheroot, CherryPy's WSGI server.

What it gives that the standard library's servers do not: a fixed pool of worker threads (idle and
keep-alive connections wait in a selector, not in a thread), a read timeout that drops a client that is
slow to send its request, a listen backlog sized for a fleet's scrapers, and TLS."""
from __future__ import annotations

import socket
from collections.abc import Callable

from cheroot import wsgi
from cheroot.server import HTTPConnection
from cheroot.ssl.builtin import BuiltinSSLAdapter

from .webconfig import WebConfig

THREADS = 4  # requests answered at once; a scrape takes milliseconds, so more only add memory
READ_TIMEOUT = 5.0  # seconds a client may take to send its request (or stay idle between keep-alive requests)
BACKLOG = 128  # connections waiting to be accepted (the kernel caps it at net.core.somaxconn)


class LazyHandshake(BuiltinSSLAdapter):
    """cheroot's adapter, with the TLS handshake moved out of the accepting thread: cheroot's own does it
    there, so one client that connects and says nothing would stall every other connection for the read
    timeout. Here the handshake happens on the first read, in a worker, once the client has sent bytes."""

    def __init__(self, web: WebConfig) -> None:
        assert web.tls is not None
        super().__init__(str(web.tls.cert_file), str(web.tls.key_file))
        self.context = web.tls.context()

    def wrap(self, sock: socket.socket) -> tuple[socket.socket, dict[str, str]]:
        wrapped = self.context.wrap_socket(sock, do_handshake_on_connect=False, server_side=True)
        return wrapped, {"wsgi.url_scheme": "https", "HTTPS": "on"}


class Server(wsgi.Server):
    """cheroot hands a new connection to a worker at once, which then waits up to the read timeout for a
    request: 4 silent connections would hold every worker. Here a new connection first waits in the
    selector, like a kept-alive one, and reaches a worker only once it has sent something; the selector
    closes it after the read timeout if it never does."""

    bind_error: OSError | None = None  # why the last address tried could not be bound

    def process_conn(self, conn: HTTPConnection) -> None:
        if not getattr(conn, "lmp_spoke", False):
            conn.lmp_spoke = True  # type: ignore[attr-defined]
            self._connections.put(conn)
            return
        super().process_conn(conn)

    def bind(self, family: int, type: int, proto: int = 0) -> socket.socket:
        try:
            return super().bind(family, type, proto)
        except OSError as err:
            self.bind_error = err
            raise

    def prepare(self) -> None:
        """Bind and listen. The OSError says why not in the system's words (cheroot's own joins the reasons
        of every address tried into one message with no errno)."""
        try:
            super().prepare()
        except OSError as err:
            raise (self.bind_error or err) from None

    def error_log(self, msg: str = "", level: int = 20, traceback: bool = False) -> None:
        pass  # a client that times out or speaks plain HTTP to TLS is no news; no line per client in the log


def server(host: str, port: int, app: Callable, web: WebConfig | None = None, name: str = "lmp",
           threads: int = THREADS) -> wsgi.Server:
    """A server for `app`, behind basic auth and TLS when `web` asks for them. Call prepare() to bind (an
    OSError says why not; scrapes made before serve() wait in the backlog), serve() to answer, stop()."""
    if web is not None and web.users:
        from .access import BasicAuth  # bcrypt only where it is used
        app = BasicAuth(app, web.users)
    srv = Server((host, port), app, numthreads=threads, max=threads, server_name=name,
                 request_queue_size=BACKLOG, timeout=READ_TIMEOUT, shutdown_timeout=1)
    if web is not None and web.tls is not None:
        srv.ssl_adapter = LazyHandshake(web)
    return srv
