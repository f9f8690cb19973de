"""A WebSocket entrypoint that calls a JSON dependency: each text message is upper-cased by the
dependency, bytes come back reversed, `count N` answers with N messages at once, `header` echoes a
request header, `fail` raises, `bye` ends the session from the chainlet's side. When the client
closes, the chainlet notes the close code in its data dir."""

import pathlib

import truss_chains as chains
from fastapi import WebSocketDisconnect
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

    def __init__(
        self,
        shout: Shout = chains.depends(Shout),
        context: chains.DeploymentContext = chains.depends_context(),
    ) -> None:
        self._shout = shout
        self._data_dir = context.data_dir

    async def run_remote(self, websocket: chains.WebSocketProtocol) -> None:
        while True:
            try:
                message = await websocket.receive()
            except WebSocketDisconnect as exc:
                if self._data_dir is not None:
                    with open(pathlib.Path(self._data_dir) / "closed-by-client", "a") as f:
                        f.write(f"{exc.code}\n")
                raise
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
