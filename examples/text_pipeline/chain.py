"""A three-chainlet text pipeline with pydantic inputs and outputs.

Splitter cuts a document into sentences, Scorer scores each sentence (reading an optional
`score_bonus` secret), and Report, the entrypoint, calls both and summarizes.
"""

import pydantic
import truss_chains as chains


class Document(pydantic.BaseModel):
    title: str
    text: str


class SentenceScore(pydantic.BaseModel):
    sentence: str
    score: int


class Summary(pydantic.BaseModel):
    title: str
    sentences: int
    best: SentenceScore | None
    total_score: int
    environment: str | None


class Splitter(chains.ChainletBase):
    async def run_remote(self, text: str) -> list[str]:
        parts = [p.strip() for p in text.replace("!", ".").replace("?", ".").split(".")]
        return [p for p in parts if p]


class Scorer(chains.ChainletBase):
    remote_config = chains.RemoteConfig(
        compute=chains.Compute(cpu_count=1, memory="1Gi", predict_concurrency=4),
        assets=chains.Assets(secret_keys=["score_bonus"]),
    )

    def __init__(self, context: chains.DeploymentContext = chains.depends_context()) -> None:
        try:
            self._bonus = int(context.secrets["score_bonus"])
        except (KeyError, ValueError, Exception):
            self._bonus = 0

    async def run_remote(self, sentences: list[str]) -> list[SentenceScore]:
        if any("forbidden" in s.lower() for s in sentences):
            raise ValueError("the document contains a forbidden word")
        return [SentenceScore(sentence=s, score=len(s.split()) + self._bonus) for s in sentences]


@chains.mark_entrypoint("text-pipeline")
class Report(chains.ChainletBase):
    def __init__(
        self,
        splitter: Splitter = chains.depends(Splitter),
        scorer: Scorer = chains.depends(Scorer),
        context: chains.DeploymentContext = chains.depends_context(),
    ) -> None:
        self._splitter = splitter
        self._scorer = scorer
        self._environment = context.environment.name if context.environment else None

    async def run_remote(self, document: Document) -> Summary:
        sentences = await self._splitter.run_remote(document.text)
        scores = await self._scorer.run_remote(sentences) if sentences else []
        best = max(scores, key=lambda s: s.score) if scores else None
        return Summary(
            title=document.title,
            sentences=len(sentences),
            best=best,
            total_score=sum(s.score for s in scores),
            environment=self._environment,
        )
