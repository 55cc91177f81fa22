"""A real SMTP server on 127.0.0.1 for tests, which the test can make hang.

It speaks enough SMTP for Django's backend (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and
keeps every message it accepted. `hold()` makes it accept new connections and say nothing (a
mail server that hangs before its greeting) until `release()`, when the held sessions go on
as if the server had only been slow.
"""

import asyncio
import contextlib
import email
import threading
from email.message import Message

from tests.faults import wait_until


class SmtpServer:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.held_sessions = 0
        self._holding = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._started.wait(timeout=10), "the SMTP server did not start"

    @property
    def url(self) -> str:
        """The `EMAIL_URL` of this server (plain SMTP, no TLS, no login)."""
        return f"smtp://127.0.0.1:{self.port}"

    def hold(self) -> None:
        self._holding.set()

    def release(self) -> None:
        self._holding.clear()

    def subjects(self) -> list[str]:
        return [message["Subject"] for message in self.messages]

    def wait_for_messages(self, count: int, *, timeout: float = 30) -> bool:
        return wait_until(lambda: len(self.messages) >= count, timeout=timeout)

    def close(self) -> None:
        self.release()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._session, "127.0.0.1", 0, limit=2**20)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()
        server.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self._holding.is_set():
                self.held_sessions += 1
                while self._holding.is_set():
                    await asyncio.sleep(0.02)
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up (its timeout) or went away
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(line: str) -> None:
            writer.write(f"{line}\r\n".encode())
            await writer.drain()

        await reply("220 test-smtp ready")
        while line := await reader.readline():
            verb = line.decode(errors="replace").strip().split(" ", 1)[0].upper()
            if verb == "EHLO":
                await reply("250-test-smtp\r\n250 8BITMIME")
            elif verb in {"HELO", "MAIL", "RCPT", "RSET", "NOOP"}:
                await reply("250 OK")
            elif verb == "DATA":
                await reply("354 end with <CRLF>.<CRLF>")
                data = await reader.readuntil(b"\r\n.\r\n")
                body = data[: -len(b"\r\n.\r\n")].replace(b"\r\n..", b"\r\n.")
                self.messages.append(email.message_from_bytes(body))
                await reply("250 queued")
            elif verb == "QUIT":
                await reply("221 bye")
                return
            else:
                await reply("502 not implemented")
