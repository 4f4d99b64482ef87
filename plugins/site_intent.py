"""Site intent map: pages clustered by the prompts they answer, and possible cannibalisation.

After a batch, each analysed page's best candidates (top 3 by rank) are embedded with the offline MiniLM
model. A page's intent vector is the confidence-weighted mean of its candidates' embeddings (normalised), so
one odd candidate does not decide alone.

- `intent_clusters`: one row per page: its cluster (average-linkage agglomerative clustering of intent
  vectors, cosine >= `cluster_threshold`), the cluster's label (the prompt nearest the cluster's centre),
  the page's best prompt, and 2-D coordinates (PCA) for drawing the map.
- `cannibalisation_pairs`: pairs of pages whose intent vectors nearly coincide (cosine >=
  `cannibalisation_threshold`, 0.9 by default): they answer the same question and may compete for the same
  searches. (With MiniLM, pages answering paraphrases of one question score about 0.95+; "fix a leaking
  kitchen tap" vs "... bathroom tap" about 0.9; related topics 0.4-0.7; unrelated ones near 0.)
  `prompt_a` / `prompt_b` are the closest pair of prompts between the two pages.
- `prompt_embeddings`: the embedding of every candidate used, for ad-hoc similarity queries in SQL
  (`list_cosine_similarity`).

Pages without candidates (failed) are left out. Re-running replaces the run's rows. A run of a single page
gets its one-row map without loading the embedding model (and no prompt_embeddings rows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..core.analyzers import BaseAnalyzer
from ..core.views import View

if TYPE_CHECKING:
    from ..core.store import Store

log = logging.getLogger("revprompt.site_intent")

CLUSTERS = "intent_clusters"
PAIRS = "cannibalisation_pairs"
EMBEDDINGS = "prompt_embeddings"

DDL = [
    f"""CREATE TABLE IF NOT EXISTS {CLUSTERS} (
        run_id VARCHAR NOT NULL,
        doc_id BIGINT NOT NULL,
        cluster_id INTEGER NOT NULL,
        cluster_label VARCHAR,
        cluster_size INTEGER,
        candidate_id BIGINT,
        prompt VARCHAR,
        centroid_similarity DOUBLE,
        x DOUBLE,
        y DOUBLE
    )""",
    f"""CREATE TABLE IF NOT EXISTS {PAIRS} (
        run_id VARCHAR NOT NULL,
        doc_id_a BIGINT NOT NULL,
        doc_id_b BIGINT NOT NULL,
        similarity DOUBLE NOT NULL,
        prompt_a VARCHAR,
        prompt_b VARCHAR,
        prompt_similarity DOUBLE,
        candidate_id_a BIGINT,
        candidate_id_b BIGINT,
        same_cluster BOOLEAN
    )""",
    f"""CREATE TABLE IF NOT EXISTS {EMBEDDINGS} (
        run_id VARCHAR NOT NULL,
        doc_id BIGINT NOT NULL,
        candidate_id BIGINT NOT NULL,
        model VARCHAR,
        embedding FLOAT[]
    )""",
]

EMBEDDING_MODEL = "all-MiniLM-L6-v2"


# -- clustering (numpy only) -------------------------------------------------------------------------------
def average_linkage(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Agglomerative clustering, average linkage on cosine similarity, stopping when no two clusters have a
    mean pairwise similarity >= threshold. `vectors` must be L2-normalised. Returns labels 0..k-1, numbered by
    cluster size (largest first), then by first member.

    O(n^2) memory and about O(n^2) time (each row caches its best partner); fine for tens of thousands of
    pages at most.
    """
    n = len(vectors)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    vecs = np.asarray(vectors, dtype=np.float64)
    sim = vecs @ vecs.T
    np.fill_diagonal(sim, -np.inf)
    size = np.ones(n)
    active = np.ones(n, dtype=bool)
    owner = np.arange(n)  # the surviving cluster index each point belongs to
    best = sim.argmax(axis=1)
    best_val = sim[np.arange(n), best]
    while n > 1:
        i = int(best_val.argmax())
        if not best_val[i] >= threshold:
            break
        j = int(best[i])
        merged = (sim[i] * size[i] + sim[j] * size[j]) / (size[i] + size[j])
        size[i] += size[j]
        sim[i, :] = merged
        sim[:, i] = merged
        sim[i, i] = -np.inf
        sim[j, :] = -np.inf
        sim[:, j] = -np.inf
        active[j] = False
        best_val[j] = -np.inf
        owner[owner == j] = i
        best[i] = sim[i].argmax()
        best_val[i] = sim[i, best[i]]
        # Rows whose best partner was i or j may have lost it; the others may now prefer i.
        stale = active & ((best == i) | (best == j))
        stale[i] = False
        for k in np.flatnonzero(stale):
            best[k] = sim[k].argmax()
            best_val[k] = sim[k, best[k]]
        better = active & (sim[:, i] > best_val)
        better[i] = False
        best[better] = i
        best_val[better] = sim[better, i]
    roots, inverse, counts = np.unique(owner, return_inverse=True, return_counts=True)
    first = np.array([np.flatnonzero(inverse == r).min() for r in range(len(roots))])
    order = sorted(range(len(roots)), key=lambda r: (-counts[r], first[r]))
    relabel = np.empty(len(roots), dtype=np.int64)
    relabel[order] = np.arange(len(roots))
    return relabel[inverse]


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """2-D coordinates for a map (deterministic signs); zeros when there is nothing to spread."""
    n = len(vectors)
    out = np.zeros((n, 2))
    if n < 2:
        return out
    centred = np.asarray(vectors, dtype=np.float64) - np.mean(vectors, axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, len(s))
    comps = vt[:k]
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
    signs[signs == 0] = 1
    out[:, :k] = centred @ (comps * signs[:, None]).T
    return out


# -- the analyzer ------------------------------------------------------------------------------------------
@dataclass
class _Page:
    doc_id: int
    candidate_ids: list[int] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # rows of the embedding matrix


class SiteIntentAnalyzer(BaseAnalyzer):
    name = "site_intent"
    description = "clusters a run's pages by the prompts they answer (MiniLM) and flags possible cannibalisation"
    tables = DDL

    def __init__(
        self,
        top_candidates: int = 3,
        cluster_threshold: float = 0.5,
        cannibalisation_threshold: float = 0.9,
        store_embeddings: bool = True,
        embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    ):
        self.top_candidates = top_candidates
        self.cluster_threshold = cluster_threshold
        self.cannibalisation_threshold = cannibalisation_threshold
        self.store_embeddings = store_embeddings
        self._embed = embed

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._embed is not None:
            return np.asarray(self._embed(texts), dtype=np.float32)
        from .embeddings import embed

        return embed(texts)

    def _pages(self, store: Store, run_id: str) -> list[_Page]:
        _, rows = store.query(
            """SELECT c.doc_id, c.candidate_id, c.prompt, c.confidence
               FROM candidates c JOIN documents d USING (doc_id)
               WHERE d.run_id = ? AND d.status = 'done' AND c.rank <= ?
               ORDER BY c.doc_id, c.rank, c.candidate_id""",
            [run_id, self.top_candidates],
        )
        pages: dict[int, _Page] = {}
        for doc_id, cand_id, prompt, confidence in rows:
            if not prompt or not prompt.strip():
                continue
            page = pages.setdefault(doc_id, _Page(doc_id))
            page.candidate_ids.append(cand_id)
            page.prompts.append(prompt)
            page.weights.append(max(float(confidence or 0.0), 1e-6))
        return list(pages.values())

    def compute(self, pages: list[_Page], run_id: str) -> dict[str, list[dict]]:
        """Rows for the three tables from pages (pure: no store)."""
        out: dict[str, list[dict]] = {CLUSTERS: [], PAIRS: [], EMBEDDINGS: []}
        if not pages:
            return out
        if len(pages) == 1:
            # One page (e.g. a single pasted text): its own cluster, nothing to compare; the embedding model
            # is not loaded for it.
            page = pages[0]
            out[CLUSTERS].append(
                {
                    "run_id": run_id,
                    "doc_id": page.doc_id,
                    "cluster_id": 1,
                    "cluster_label": page.prompts[0],
                    "cluster_size": 1,
                    "candidate_id": page.candidate_ids[0],
                    "prompt": page.prompts[0],
                    "centroid_similarity": 1.0,
                    "x": 0.0,
                    "y": 0.0,
                }
            )
            return out
        unique = sorted({p for page in pages for p in page.prompts})
        index = {p: i for i, p in enumerate(unique)}
        emb = self.embed(unique)
        for page in pages:
            page.rows = [index[p] for p in page.prompts]

        # Intent vector per page: confidence-weighted mean of its candidates' embeddings.
        vecs = np.zeros((len(pages), emb.shape[1]), dtype=np.float64)
        for k, page in enumerate(pages):
            w = np.asarray(page.weights) / sum(page.weights)
            v = (emb[page.rows].astype(np.float64) * w[:, None]).sum(axis=0)
            norm = np.linalg.norm(v)
            vecs[k] = v / norm if norm > 0 else v

        labels = average_linkage(vecs, self.cluster_threshold)
        coords = pca_2d(vecs)
        for cluster in range(int(labels.max()) + 1 if len(labels) else 0):
            members = np.flatnonzero(labels == cluster)
            centre = vecs[members].mean(axis=0)
            norm = np.linalg.norm(centre)
            centre = centre / norm if norm > 0 else centre
            member_rows = sorted({r for m in members for r in pages[m].rows})
            label_row = member_rows[int(np.argmax(emb[member_rows] @ centre))]
            for m in members:
                page = pages[m]
                out[CLUSTERS].append(
                    {
                        "run_id": run_id,
                        "doc_id": page.doc_id,
                        "cluster_id": cluster + 1,
                        "cluster_label": unique[label_row],
                        "cluster_size": len(members),
                        "candidate_id": page.candidate_ids[0],
                        "prompt": page.prompts[0],
                        "centroid_similarity": float(vecs[m] @ centre),
                        "x": float(coords[m, 0]),
                        "y": float(coords[m, 1]),
                    }
                )

        sims = vecs @ vecs.T
        a_idx, b_idx = np.nonzero(np.triu(sims >= self.cannibalisation_threshold, k=1))
        for a, b in zip(a_idx.tolist(), b_idx.tolist()):
            pa, pb = pages[a], pages[b]
            if pa.doc_id > pb.doc_id:
                pa, pb = pb, pa
            cross = emb[pa.rows] @ emb[pb.rows].T
            i, j = np.unravel_index(int(np.argmax(cross)), cross.shape)
            out[PAIRS].append(
                {
                    "run_id": run_id,
                    "doc_id_a": pa.doc_id,
                    "doc_id_b": pb.doc_id,
                    "similarity": float(sims[a, b]),
                    "prompt_a": pa.prompts[i],
                    "prompt_b": pb.prompts[j],
                    "prompt_similarity": float(cross[i, j]),
                    "candidate_id_a": pa.candidate_ids[i],
                    "candidate_id_b": pb.candidate_ids[j],
                    "same_cluster": bool(labels[a] == labels[b]),
                }
            )
        out[PAIRS].sort(key=lambda r: (-r["similarity"], r["doc_id_a"], r["doc_id_b"]))

        if self.store_embeddings:
            for page in pages:
                for cand_id, row in zip(page.candidate_ids, page.rows):
                    out[EMBEDDINGS].append(
                        {
                            "run_id": run_id,
                            "doc_id": page.doc_id,
                            "candidate_id": cand_id,
                            "model": EMBEDDING_MODEL,
                            "embedding": emb[row].astype(float).tolist(),
                        }
                    )
        return out

    def views(self) -> list[View]:
        return [
            View(
                title="Intent map",
                key="i",
                scope="run",
                kind="groups",
                sql=f"""SELECT coalesce(c.cluster_label, concat('cluster ', c.cluster_id)) AS cluster,
                             coalesce(d.title, d.uri, concat('doc ', c.doc_id)) AS page,
                             (SELECT arg_min(prompt, perplexity) FROM candidates WHERE doc_id = c.doc_id)
                                 AS best_prompt,
                             c.doc_id
                         FROM {CLUSTERS} c LEFT JOIN documents d ON d.doc_id = c.doc_id
                         WHERE c.run_id = $run_id ORDER BY c.cluster_id, c.doc_id""",
                columns={"cluster": "Cluster", "page": "Page", "best_prompt": "Best prompt"},
                note="{groups} intent clusters over {rows} pages · Enter opens a page",
                empty="no pages clustered in this run",
                tables=(CLUSTERS,),
                doc_column="doc_id",
            ),
            View(
                title="Cannibalisation",
                scope="run",
                sql=f"""SELECT p.similarity, coalesce(a.title, a.uri) AS page_a, coalesce(b.title, b.uri) AS page_b,
                             p.doc_id_a
                         FROM {PAIRS} p
                         LEFT JOIN documents a ON a.doc_id = p.doc_id_a
                         LEFT JOIN documents b ON b.doc_id = p.doc_id_b
                         WHERE p.run_id = $run_id ORDER BY p.similarity DESC, p.doc_id_a, p.doc_id_b LIMIT 200""",
                columns={"similarity": "Sim.", "page_a": "Page A", "page_b": "Page B"},
                note="Pages competing for one intent · Enter opens page A",
                empty="no pages compete for one intent in this run",
                tables=(PAIRS,),
                doc_column="doc_id_a",
            ),
        ]

    def analyze_run(self, store: Store, run_id: str) -> None:
        pages = self._pages(store, run_id)
        rows = self.compute(pages, run_id)
        with store.transaction():
            for table in (CLUSTERS, PAIRS, EMBEDDINGS):
                store.query(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            for table, table_rows in rows.items():
                store.insert_rows(table, table_rows)
        log.info(
            "site intent for run %s: %d pages, %d clusters, %d possible cannibalisation pairs",
            run_id,
            len(pages),
            len({r["cluster_id"] for r in rows[CLUSTERS]}),
            len(rows[PAIRS]),
        )
