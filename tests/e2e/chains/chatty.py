"""A chain that logs through Python's logging at every level, prints, and fails on demand in its
dependency: what the logs API must show of it, level by level and request by request."""

import logging

import truss_chains as chains

log = logging.getLogger("chatty.entry")


class Echo(chains.ChainletBase):
    # truss: "Sets log level to debug in deployed server".
    remote_config = chains.RemoteConfig(options=chains.ChainletOptions(enable_debug_logs=True))

    def run_remote(self, text: str) -> str:
        logging.getLogger("chatty.echo").debug("echo debug %s", text)
        if text.startswith("fail"):
            raise ValueError(f"echo refuses {text}")
        return text[::-1]


@chains.mark_entrypoint("chatty")
class Chatty(chains.ChainletBase):
    def __init__(self, echo: Echo = chains.depends(Echo)) -> None:
        self._echo = echo

    async def run_remote(self, text: str) -> str:
        log.debug("entry debug %s", text)  # below INFO: not logged without enable_debug_logs
        log.info("entry info %s", text)
        log.warning("entry warning %s", text)
        logging.error("root error %s", text)
        print(f"entry printed {text}")
        return self._echo.run_remote(text)
