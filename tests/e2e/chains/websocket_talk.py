"""A WebSocket entrypoint that calls a JSON dependency: each text message is upper-cased by the
dependency, bytes come back reversed, `count N` answers with N messages at once, `header` echoes a
request header, `fail` raises, `bye` ends the session from the chainlet's side."""

import truss_chains as chains
from truss.base import truss_config


class Shout(chains.ChainletBase):
    async def run_remote(self, text: str) -> str:
        return text.upper()


@chains.mark_entrypoint("websocket-talk")
class Talk(chains.ChainletBase):
    remote_config = chains.RemoteConfig(
        options=chains.ChainletOptions(
            transport=truss_config.WebsocketOptions(ping_interval_seconds=5, ping_timeout_seconds=5)
        )
    )

    def __init__(self, shout: Shout = chains.depends(Shout)) -> None:
        self._shout = shout

    async def run_remote(self, websocket: chains.WebSocketProtocol) -> None:
        while True:
            message = await websocket.receive()
            if isinstance(message, bytes):
                await websocket.send_bytes(message[::-1])
            elif message == "bye":
                return
            elif message == "fail":
                raise ValueError("asked to fail")
            elif message == "header":
                await websocket.send_text(websocket.headers.get("x-talk-session", "none"))
            elif message.startswith("count "):
                for i in range(int(message.split()[1])):
                    await websocket.send_json({"i": i})
            else:
                await websocket.send_text(await self._shout.run_remote(text=message))
