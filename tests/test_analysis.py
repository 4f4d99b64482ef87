"""Analyzers: key phrases, word frequencies, site intent map (real offline MiniLM), the runner, a batch of 22."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from revprompt.core import analyzers as runner
from revprompt.core.store import Store
from revprompt.core.types import DEFAULT_SWEEP, Document
from revprompt.plugins.key_phrases import KeyPhrasesAnalyzer, key_phrases
from revprompt.plugins.site_intent import SiteIntentAnalyzer, average_linkage, pca_2d
from revprompt.plugins.testing import make_result, run_batch
from revprompt.plugins.text import words
from revprompt.plugins.word_frequency import WordFrequencyAnalyzer


def rows_of(store, sql, params=None):
    cols, rows = store.query(sql, params)
    return [dict(zip(cols, r)) for r in rows]


# -- key phrases --------------------------------------------------------------------------------------------
BREAD = [
    ("how to bake sourdough bread at home", 3.0),
    ("easy sourdough bread recipe for beginners", 4.0),
    ("sourdough bread baking tips", 5.0),
    ("what is the history of rye flour", 2.5),  # the surest candidate, alone in its phrase
]


def test_phrase_carried_by_more_candidates_outranks_a_confident_single():
    rows = {r["phrase"]: r for r in key_phrases(make_result(BREAD).candidates, limit=None)}
    shared, single = rows["sourdough bread"], rows["rye flour"]
    assert (shared["n_candidates"], single["n_candidates"]) == (3, 1)
    assert shared["weight"] > single["weight"]
    assert shared["phrase_rank"] < single["phrase_rank"]
    # weight = sum over carriers of (0.5 + 0.5 * conf / max_conf) / n_candidates
    unit = {ppl: 0.5 + 0.5 * (1 / ppl) / (1 / 2.5) for _, ppl in BREAD}
    assert shared["weight"] == pytest.approx((unit[3.0] + unit[4.0] + unit[5.0]) / 4)
    assert single["weight"] == pytest.approx(unit[2.5] / 4)
    assert shared["share"] == pytest.approx(0.75)
    # equal carriers: confidence decides (rye flour's candidate is surer than "beginners"')
    assert rows["rye flour"]["weight"] > rows["beginners"]["weight"]
    # the longest phrase carried by the same candidates is the maximal one
    assert shared["maximal"] and not rows["sourdough"]["maximal"] and not rows["bread"]["maximal"]
    # n-grams never start or end with a stopword
    assert "at home" not in rows and "how" not in rows and "home" in rows
    assert "history of rye" in rows and rows["history of rye"]["n"] == 3
    assert shared["best_candidate_rank"] == 2  # ppl 3.0 is rank 2 (rye flour's 2.5 is rank 1)


def test_key_phrases_table_joins_documents_and_candidates(db_path):
    with Store(db_path) as store:
        run_id = run_batch(store, [(Document("page-bread", "..."), make_result(BREAD))], [KeyPhrasesAnalyzer()])
        top = rows_of(
            store,
            "SELECT d.uri, k.phrase, k.n_candidates, k.run_id FROM key_phrases k JOIN documents d USING (doc_id) "
            "ORDER BY k.phrase_rank LIMIT 1",
        )
        assert top == [{"uri": "page-bread", "phrase": "sourdough bread", "n_candidates": 3, "run_id": run_id}]
        carriers = rows_of(
            store,
            "SELECT c.prompt FROM key_phrases k, UNNEST(k.candidate_ids) AS u(candidate_id) "
            "JOIN candidates c ON c.candidate_id = u.candidate_id WHERE k.phrase = 'sourdough bread' ORDER BY c.rank",
        )
        assert [r["prompt"] for r in carriers] == [p for p, _ in BREAD if "sourdough bread" in p]


def test_key_phrases_of_no_candidates_is_empty():
    assert key_phrases([]) == []
    assert KeyPhrasesAnalyzer().analyze_document(Document("x"), make_result([]), "r") == {"key_phrases": []}


# -- word frequencies ---------------------------------------------------------------------------------------
SHOES = [
    ("Best running shoes: running shoes for flat feet, best of 2024", 3.0),
    ("Which running shoe suits flat feet?", 4.0),
]


def test_word_frequencies_count_each_candidate(db_path):
    with Store(db_path) as store:
        run_id = run_batch(store, [(Document("page-shoes", "..."), make_result(SHOES))], [WordFrequencyAnalyzer()])
        rows = rows_of(
            store,
            "SELECT c.prompt, w.word, w.count, w.stopword, w.candidate_rank, c.rank, w.run_id, w.doc_id = c.doc_id AS same_doc "
            "FROM word_frequencies w JOIN candidates c USING (candidate_id)",
        )
    by_prompt: dict[str, Counter] = {}
    for r in rows:
        assert r["same_doc"] and r["candidate_rank"] == r["rank"] and r["run_id"] == run_id
        by_prompt.setdefault(r["prompt"], Counter())[r["word"]] += r["count"]
        assert r["stopword"] == (r["word"] in {"for", "of", "which"})
    first = by_prompt[SHOES[0][0]]
    assert first == Counter({"best": 2, "running": 2, "shoes": 2, "for": 1, "flat": 1, "feet": 1, "of": 1, "2024": 1})
    assert by_prompt[SHOES[1][0]] == Counter(words(SHOES[1][0]))
    assert sum(first.values()) == 11


# -- site intent --------------------------------------------------------------------------------------------
PAGES = {
    "/paris-capital": ["what is the capital of france", "which city is the capital of france", "capital of france"],
    "/france-capital-city": [
        "what is the capital city of france",
        "which city is france's capital",
        "france capital city",
    ],
    "/flat-feet-shoes": [
        "best running shoes for flat feet",
        "running shoes for flat feet",
        "which trainers are good for flat feet",
    ],
    "/leaking-tap": ["how to fix a leaking kitchen tap", "how do i repair a dripping faucet", "leaking tap repair"],
}


def intent_items():
    items = [(Document(uri, f"page {uri}"), make_result(prompts)) for uri, prompts in PAGES.items()]
    items.append((Document("/broken", "").failed("HTTP 500"), None))
    return items


def test_near_identical_pages_are_flagged_and_unrelated_ones_are_not(db_path):
    with Store(db_path) as store:
        run_id = run_batch(store, intent_items(), [SiteIntentAnalyzer()])
        pairs = rows_of(
            store,
            "SELECT da.uri AS a, db.uri AS b, p.similarity, p.prompt_a, p.prompt_b, p.same_cluster "
            "FROM cannibalisation_pairs p JOIN documents da ON da.doc_id = p.doc_id_a "
            "JOIN documents db ON db.doc_id = p.doc_id_b WHERE p.run_id = ?",
            [run_id],
        )
        assert [{p["a"], p["b"]} for p in pairs] == [{"/paris-capital", "/france-capital-city"}]
        assert pairs[0]["similarity"] >= 0.9 and pairs[0]["same_cluster"]
        assert "capital" in pairs[0]["prompt_a"] and "capital" in pairs[0]["prompt_b"]

        clusters = {
            r["uri"]: r
            for r in rows_of(
                store,
                "SELECT d.uri, i.* FROM intent_clusters i JOIN documents d USING (doc_id) WHERE i.run_id = ?",
                [run_id],
            )
        }
        assert set(clusters) == set(PAGES)  # the failed page is left out
        paris, france = clusters["/paris-capital"], clusters["/france-capital-city"]
        assert paris["cluster_id"] == france["cluster_id"] == 1 and paris["cluster_size"] == 2
        assert "capital" in paris["cluster_label"]
        others = {clusters["/flat-feet-shoes"]["cluster_id"], clusters["/leaking-tap"]["cluster_id"]}
        assert len(others) == 2 and 1 not in others
        # each page's best prompt joins to its rank-1 candidate
        best = rows_of(
            store,
            "SELECT i.prompt = c.prompt AS same, c.rank FROM intent_clusters i JOIN candidates c USING (candidate_id)",
        )
        assert len(best) == 4 and all(r["same"] and r["rank"] == 1 for r in best)
        n_emb = rows_of(store, "SELECT count(*) AS n, min(len(embedding)) AS dim FROM prompt_embeddings")[0]
        assert n_emb == {"n": 12, "dim": 384}

        # running the run-level step again replaces the rows, never duplicates them
        assert runner.finish_run(store, run_id, [SiteIntentAnalyzer()]) == {}
        assert rows_of(store, "SELECT count(*) AS n FROM intent_clusters")[0]["n"] == 4
        assert rows_of(store, "SELECT count(*) AS n FROM cannibalisation_pairs")[0]["n"] == 1


def test_site_intent_with_one_page_and_with_only_failures(db_path):
    with Store(db_path) as store:
        calls = []
        one = run_batch(store, intent_items()[:1], [SiteIntentAnalyzer(embed=calls.append)])
        rows = rows_of(
            store,
            "SELECT cluster_id, cluster_size, x, y, prompt, cluster_label FROM intent_clusters WHERE run_id = ?",
            [one],
        )
        best = PAGES["/paris-capital"][0]
        assert rows == [{"cluster_id": 1, "cluster_size": 1, "x": 0.0, "y": 0.0, "prompt": best, "cluster_label": best}]
        assert calls == []  # one page: nothing to compare, the embedding model is not even loaded
        failed = run_batch(store, intent_items()[-1:], [SiteIntentAnalyzer()])
        assert rows_of(store, "SELECT count(*) AS n FROM intent_clusters WHERE run_id = ?", [failed])[0]["n"] == 0
        assert rows_of(store, "SELECT count(*) AS n FROM cannibalisation_pairs")[0]["n"] == 0


def test_average_linkage_matches_scipy():
    hierarchy = pytest.importorskip("scipy.cluster.hierarchy")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16))
    vecs = np.repeat(centres, 8, axis=0) + rng.normal(scale=0.6, size=(48, 16))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    for threshold in (0.3, 0.5, 0.7, 0.9):
        ours = average_linkage(vecs, threshold)
        z = hierarchy.linkage(vecs, method="average", metric="cosine")
        theirs = hierarchy.fcluster(z, t=1 - threshold, criterion="distance")
        as_sets = lambda labels: {frozenset(np.flatnonzero(labels == k)) for k in set(labels.tolist())}  # noqa: E731
        assert as_sets(ours) == as_sets(theirs), threshold
        sizes = np.bincount(ours)
        assert list(sizes) == sorted(sizes, reverse=True)  # numbered largest first


def test_average_linkage_and_pca_edge_cases():
    assert average_linkage(np.zeros((0, 4)), 0.5).tolist() == []
    assert average_linkage(np.ones((1, 4)) / 2, 0.5).tolist() == [0]
    same = np.tile([[1.0, 0.0]], (3, 1))
    assert average_linkage(same, 0.99).tolist() == [0, 0, 0]
    assert pca_2d(same).tolist() == [[0.0, 0.0]] * 3


# -- runner -------------------------------------------------------------------------------------------------
class OldProtocolAnalyzer:
    """Written against the first protocol: analyze_document(doc, result), no analyze_run."""

    name = "old"
    description = "old-style analyzer"
    tables = ["CREATE TABLE IF NOT EXISTS old_rows (doc_id BIGINT, n INTEGER)"]

    def analyze_document(self, doc, result):
        return {"old_rows": [{"n": len(result.candidates)}]}


class BrokenAnalyzer:
    name = "broken"
    description = "raises"
    tables: list[str] = []

    def analyze_document(self, doc, result, run_id=None):
        raise RuntimeError("boom")

    def analyze_run(self, store, run_id):
        raise RuntimeError("run boom")


def test_runner_tolerates_old_protocol_and_broken_analyzers(db_path, caplog):
    analyzers = [OldProtocolAnalyzer(), BrokenAnalyzer(), WordFrequencyAnalyzer()]
    with Store(db_path) as store:
        runner.prepare(store, analyzers)
        run_id = store.create_run("test", "m")
        doc, result = Document("p", "text", status="done"), make_result(["red apples", "green apples"])
        store.save_document(
            run_id, doc, result, plugin_rows=lambda: runner.analyze_document(analyzers, doc, result, run_id)
        )
        assert rows_of(store, "SELECT doc_id IS NOT NULL AS ok, n FROM old_rows") == [{"ok": True, "n": 2}]
        assert rows_of(store, "SELECT count(*) AS n FROM word_frequencies")[0]["n"] == 4
        assert "broken" in caplog.text and "boom" in caplog.text
        assert runner.finish_run(store, run_id, analyzers) == {"broken": "RuntimeError: run boom"}
    assert runner.analyze_document(analyzers, Document("f").failed("x"), None, "r") == {}


def test_builtin_analyzers_are_registered_through_the_hook():
    names = {a.name for a in runner.registered_analyzers()}
    assert {"key_phrases", "word_frequency", "site_intent"} <= names


# -- acceptance: a batch of 22 documents through the real batch code -----------------------------------------
TOPICS = {
    "capital": ["what is the capital of {x}", "which city is the capital of {x}", "{x} capital city"],
    "shoes": ["best running shoes for {x}", "which running shoes are good for {x}", "running shoes {x}"],
    "tap": ["how to fix a leaking {x} tap", "repair a dripping {x} faucet", "{x} tap leaking what to do"],
    "bread": ["how to bake {x} bread at home", "easy {x} bread recipe", "{x} bread baking tips"],
    "tax": ["how do i file my {x} tax return", "{x} tax return deadline", "filing {x} taxes online"],
}
FILLERS = {
    "capital": ["france", "france", "japan", "peru", "kenya"],
    "shoes": ["flat feet", "flat feet", "trail running", "marathons"],
    "tap": ["kitchen", "bathroom", "garden", "outdoor"],
    "bread": ["sourdough", "rye", "banana", "gluten free"],
    "tax": ["self assessment", "self assessment", "corporation", "vat", "property"],
}


class StubEngine:
    """Stands in for the model: each page text maps to hand-written candidates (the engine is not under test)."""

    def __init__(self, table):
        self.table = table

    def sweep(self, text, kind="response"):
        if text not in self.table:
            raise RuntimeError("model exploded")
        return make_result([(p, 2.0 + i * 0.7) for i, p in enumerate(self.table[text])])


def test_batch_of_22_documents_fills_joinable_tables(db_path):
    from revprompt.core.batch import BatchRunner

    table, texts = {}, []
    for topic, fillers in FILLERS.items():
        for n, x in enumerate(fillers):
            text = f"Page {n} about {topic}: {x}. " + "Some body text. " * 3
            table[text] = [t.format(x=x) for t in TOPICS[topic]]
            texts.append(text)
    texts.append("a page the stub engine cannot read")
    assert len(texts) == 23

    with Store(db_path) as store:
        batch = BatchRunner(
            store, lambda: StubEngine(table), {"model": "stub"}, analyzers=runner.registered_analyzers()
        )
        summary = batch.run("analyze", texts)
        assert (summary.done, summary.failed) == (22, 1)
        run_id = summary.run_id

        counts = rows_of(
            store,
            """
            SELECT (SELECT count(DISTINCT doc_id) FROM key_phrases WHERE run_id = $1) AS kp_docs,
                   (SELECT count(DISTINCT candidate_id) FROM word_frequencies WHERE run_id = $1) AS wf_cands,
                   (SELECT count(*) FROM intent_clusters WHERE run_id = $1) AS intent_docs,
                   (SELECT count(*) FROM candidates WHERE run_id = $1) AS cands""",
            [run_id],
        )[0]
        assert counts == {"kp_docs": 22, "wf_cands": 66, "intent_docs": 22, "cands": 66}

        # every analyzer row joins back to its document and (where it names one) its candidate
        orphans = rows_of(
            store,
            """
            SELECT (SELECT count(*) FROM key_phrases k LEFT JOIN documents d USING (doc_id) WHERE d.doc_id IS NULL) AS kp,
                   (SELECT count(*) FROM word_frequencies w LEFT JOIN candidates c
                        ON c.candidate_id = w.candidate_id AND c.doc_id = w.doc_id WHERE c.candidate_id IS NULL) AS wf,
                   (SELECT count(*) FROM intent_clusters i LEFT JOIN candidates c
                        ON c.candidate_id = i.candidate_id AND c.doc_id = i.doc_id WHERE c.candidate_id IS NULL) AS ic""",
        )[0]
        assert orphans == {"kp": 0, "wf": 0, "ic": 0}

        # pages cluster by topic (no cluster mixes two topics; MiniLM keeps "capital of <country>" pages apart,
        # the France pages aside); the pages written twice for the same filler are cannibalisation pairs
        topic_of = {}
        for r in rows_of(
            store,
            "SELECT d.text, i.cluster_id FROM intent_clusters i JOIN documents d USING (doc_id) WHERE i.run_id = ?",
            [run_id],
        ):
            topic_of.setdefault(r["cluster_id"], set()).add(r["text"].split(":")[0].split()[-1])
        assert all(len(topics) == 1 for topics in topic_of.values()), topic_of
        for topic in ("shoes", "tap", "bread", "tax"):
            assert sum(topic in t for t in topic_of.values()) == 1, (topic, topic_of)
        pairs = rows_of(
            store,
            """
            SELECT p.prompt_a, p.prompt_b, p.similarity, p.same_cluster,
                   split_part(da.text, ':', 1) AS page_a, split_part(db.text, ':', 1) AS page_b
            FROM cannibalisation_pairs p
            JOIN documents da ON da.doc_id = p.doc_id_a JOIN documents db ON db.doc_id = p.doc_id_b
            WHERE p.run_id = ? ORDER BY p.similarity DESC, p.prompt_a""",
            [run_id],
        )
        duplicates = sorted(p["page_a"].split()[-1] for p in pairs if p["similarity"] > 0.99)
        assert duplicates == ["capital", "shoes", "tax"], pairs
        assert all(p["prompt_a"] == p["prompt_b"] for p in pairs if p["similarity"] > 0.99)
        assert all(p["same_cluster"] and p["page_a"].split()[-1] == p["page_b"].split()[-1] for p in pairs), pairs

        # every example query of docs/queries.md runs on it; "which pages answer the same question?" finds them
        import re
        from pathlib import Path

        doc = (Path(__file__).resolve().parents[1] / "docs" / "queries.md").read_text()
        queries = re.findall(r"```sql\n(.*?)```", doc, re.S)
        assert len(queries) >= 10
        results = [store.query(q)[1] for q in queries]
        assert len(results[0]) == 3 and all(r[2] == pytest.approx(1.0, abs=1e-3) for r in results[0])

        # the failed page is a row with its error and no analyzer rows
        failed = rows_of(store, "SELECT doc_id, error FROM documents WHERE status = 'failed'")
        assert len(failed) == 1 and "model exploded" in failed[0]["error"]
        assert (
            rows_of(store, "SELECT count(*) AS n FROM key_phrases WHERE doc_id = ?", [failed[0]["doc_id"]])[0]["n"] == 0
        )


def test_tiny_model_batch_fills_the_tables(db_path, tiny_model, gemma_tokenizer):
    """The same path with a real (tiny, random) model: gibberish prompts, but every table gets its rows."""
    from revprompt.core.engine import Engine

    engine = Engine(
        tiny_model,
        gemma_tokenizer,
        configs=DEFAULT_SWEEP[:2],
        max_new_tokens=6,
        model_name="tiny-random",
        method="reference",
    )
    docs = ["Paris is the capital of France.", "Lace your running shoes loosely if your feet swell."]
    items = [(Document(f"doc-{i}", t), engine.sweep(t)) for i, t in enumerate(docs)]
    assert all(r.candidates for _, r in items)
    with Store(db_path) as store:
        run_id = run_batch(store, items)  # every registered analyzer
        n = rows_of(
            store,
            """
            SELECT (SELECT count(DISTINCT doc_id) FROM word_frequencies WHERE run_id = $1) AS wf,
                   (SELECT count(*) FROM intent_clusters WHERE run_id = $1) AS ic,
                   (SELECT count(*) FROM prompt_embeddings WHERE run_id = $1) AS pe""",
            [run_id],
        )[0]
        assert n["wf"] == 2 and n["ic"] == 2 and n["pe"] >= 2
