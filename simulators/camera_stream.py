"""A network camera for testers: frames served as MJPEG over HTTP, as an IP camera does."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np


class MjpegStream:
    """A network camera: serves `frames` (BGR) over and over as MJPEG over HTTP
    (multipart/x-mixed-replace) at `fps`, to any number of clients; `url` once started.
    OpenCV's FFMPEG backend opens it like an IP camera's stream. Use as a context manager."""

    def __init__(self, frames: list[np.ndarray], fps: float = 25.0, host: str = "127.0.0.1"):
        self.jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
                      for f in frames]
        self.fps, self.host = fps, host
        self.sent = 0  # frames sent, over every client
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """http://host:port/video.mjpg (only once started)."""
        if self._server is None:
            raise RuntimeError("the stream is not started")
        return f"http://{self.host}:{self._server.server_port}/video.mjpg"

    def start(self) -> MjpegStream:
        """Listen on a free port and serve in a background thread."""
        stream = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                n = 0
                while not stream._stop.is_set():
                    jpeg = stream.jpegs[n % len(stream.jpegs)]
                    try:
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg))
                    except OSError:  # the client went away
                        return
                    n += 1
                    stream.sent += 1
                    stream._stop.wait(1 / stream.fps)

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="mjpeg-stream",
                         daemon=True).start()
        return self

    def show(self, frames: list[np.ndarray]) -> None:
        """From the next frame on, serve these instead (the scene in front of the camera)."""
        self.jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
                      for f in frames]

    def stop(self) -> None:
        """Stop serving and close the port."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> MjpegStream:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
