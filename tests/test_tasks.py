"""The paper's task registry: every task registered, the 9 mirrored ones loaded and checked by content.

Facts asserted here come from shared/data/README.md (rows, label counts, character counts) and from
the authors' repository at the pinned commit (columns, id forms, character counts of the files not
mirrored). Copies with invisible differences must load; copies with a changed label, word or row
must be refused with the difference named, from every source (mirror, cache, download, source=).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from hackrisk import datasets as ds
from hackrisk import tasks as T

from ._data import offline_mirror

README_COUNTS = {
    "framesI_tweets23": (150, 58724, {"neutral": 139, "solution": 6, "problem": 5}),
    "relevance_tweets23": (411, 180014, {"irrelevant": 217, "relevant": 194}),
    "framesI_tweets": (593, 223214, {"solution": 257, "problem": 179, "neutral": 157}),
    "framesII_tweets": (311, 145358, {"policy": 208, "fairness": 35, "political": 20, "constitutionality": 19,
                                      "law": 12, "morality": 6, "other": 4, "security": 4, "economic": 2,
                                      "external": 1}),
    "framesII_tweets17": (569, 229407, {"health": 124, "economic": 98, "policy": 77, "political": 59, "other": 52,
                                        "security": 50, "external": 32, "law": 18, "fairness": 18,
                                        "constitutionality": 14, "morality": 12, "quality": 9, "capacity": 3,
                                        "cultural": 2, "public": 1}),
    "stance_tweets": (557, 252584, {"neutral": 317, "against": 210, "in favor of": 30}),
    "topic_tweets": (611, 272120, {"section 230": 293, "trump ban": 159, "complaint": 103,
                                   "platform policies": 50, "twitter support": 6}),
    "framesI_news": (326, 506552, {"solution": 202, "problem": 89, "neutral": 35}),
    "stance_climate": (1793, 510038, {"neutral": 762, "agree": 688, "disagree": 343}),
}


@pytest.fixture
def mirror(monkeypatch, tmp_path) -> Path:
    return offline_mirror(monkeypatch, tmp_path)


def _raw(mirror: Path, name: str) -> str:
    return gzip.decompress((mirror / "llmhacking" / f"{name}.csv.gz").read_bytes()).decode("utf-8")


# ---- the registry --------------------------------------------------------------------------------


def test_every_task_file_is_registered():
    reg = T.list_paper_tasks()
    assert len(reg) == 29 and reg["name"].is_unique
    assert int(reg["public"].sum()) == 28
    survey = T.PAPER_TASKS["issue_survey"]
    assert survey.unavailable and "REDACTED" in survey.unavailable and survey.file == "issue_survey_REDACTED"
    with pytest.raises(ds.DataNotFoundError, match="texts removed"):
        ds.load_task("issue_survey")
    assert set(README_COUNTS) == {t.name for t in T.PAPER_TASKS.values() if t.mirrored}
    for t in T.PAPER_TASKS.values():
        assert t.citation and t.study and t.description and t.classes, t.name
        assert t.columns[0] == "id" and t.label in t.columns and (t.text is None or t.text in t.columns), t.name
        assert set(t.covariates) <= set(t.columns), t.name
        assert t.chars > 10_000 and t.url.endswith(f"/{t.commit}/data/all_data_processed/{t.file}.csv")
        assert len(set(t.classes)) == len(t.classes)
        for pid, template, origin in t.prompts:
            assert origin in ("authors", "hackrisk") and "{text}" in template, (t.name, pid)
            assert "<<X>>" in template.format(text="<<X>>")
    # the authors' prompts are quoted for at least the relevance, Frames I and climate-stance tasks
    for name in ("relevance_tweets23", "framesI_tweets", "framesI_tweets23", "stance_climate"):
        assert any(p[2] == "authors" for p in T.PAPER_TASKS[name].prompts), name
    assert len(T.PAPER_TASKS["stance_climate"].prompts) == 5
    # classes in the authors' order (from their answer mappings / task descriptions)
    assert T.PAPER_TASKS["stance_tweets"].classes == ("in favor of", "against", "neutral")
    assert T.PAPER_TASKS["stance_climate"].classes == ("agree", "neutral", "disagree")
    assert T.PAPER_TASKS["topic_tweets"].classes[:2] == ("section 230", "trump ban")


def test_list_tasks_says_what_is_available(mirror, tmp_path, monkeypatch):
    tab = ds.list_tasks().set_index("name")
    for name in README_COUNTS:
        assert tab.loc[name, "available"] == "mirror"
    assert tab.loc["emotion", "available"] == "" and tab.loc["issue_survey", "available"].startswith("no:")
    cached = tmp_path / "cache" / "data" / "llmhacking" / "tone.csv"
    cached.parent.mkdir(parents=True)
    cached.write_text("x")
    assert ds.list_tasks().set_index("name").loc["tone", "available"] == "cache"


# ---- the mirrored tasks --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(README_COUNTS))
def test_mirrored_task_loads_offline_as_published(mirror, name):
    rows, chars, counts = README_COUNTS[name]
    text = _raw(mirror, name)
    assert len(text) == chars  # the published character count
    td = ds.load_task(name)
    items = td.items
    assert len(items) == rows and items["item_id"].is_unique
    assert items["item_id"].str.fullmatch(T.PAPER_TASKS[name].id_pattern).all()
    assert dict(Counter(items["truth"])) == counts
    assert set(counts) <= set(td.classes)
    # texts character-exact: the same strings a plain CSV reader finds in the published file
    parsed = list(csv.DictReader(io.StringIO(text, newline="")))
    assert items["item_id"].tolist() == [r["id"] for r in parsed]
    assert items["text"].tolist() == [r["text"] for r in parsed]
    prov = td.info["provenance"]
    assert prov["checked"] == "content" and not prov["invisible_differences"] and len(prov["sha256"]) == 64
    for template in td.prompts:
        filled = template.format(text=items["text"].iloc[0])
        assert items["text"].iloc[0] in filled


def test_shipped_reference_is_the_mirror(mirror):
    for name in README_COUNTS:
        fp = T.content_fingerprint(_raw(mirror, name).encode("utf-8"), name)
        ref = T._reference()[name]
        assert {k: fp[k] for k in ref} == ref, name


def test_task_shapes(mirror):
    climate = ds.load_task("stance_climate")
    num = climate.items["item_id"].str.rsplit("_", n=1).str[1].astype(int)
    assert num.iloc[-1] == 2045 and len(num) == 1793 and num.is_monotonic_increasing  # ids with gaps
    assert climate.items["round"].dtype.kind == "i" and climate.items["agree"].dtype.kind == "f"
    frames17 = ds.load_task("framesII_tweets17")
    assert len(frames17.classes) == 15 and (frames17.items["truth"] == "public").sum() == 1  # rare class
    assert frames17.items["created_at"].dtype.kind == "M"
    news = ds.load_task("framesI_news")
    assert news.info["longest_text_chars"] > 1500 and "annotate_status" in news.info["notes"]
    assert "publication_name" in news.items
    rel = ds.load_task("relevance_tweets23")
    assert rel.info["provenance"]["checked"] == "content" and rel.ratings is not None
    cube = ds.empty_cube(frames17, climate, temperatures=(0.0,), n_items=5, rng=0)
    shas = dict(s.split(":") for s in cube.attrs["data_sha256"])
    assert shas["stance_climate"] == climate.info["provenance"]["sha256"]


# ---- verification by content, for every source ---------------------------------------------------

_NAME = "framesI_tweets"


def _invisible_variant(text: str) -> str:
    """Only invisible changes: CRLF inside fields, a zero-width joiner, a no-break space, a C1 control."""
    head, body = text.split("\n", 1)
    k = body.index('"', 0) + 1  # inside the first quoted field
    body = body[:k] + "\u200d" + body[k:]
    i = body.index(" ", k)
    body = body[:i] + "\u00a0" + body[i + 1:]
    j = body.index("\n", body.index('"', k))  # a line break somewhere later
    body = body[:j] + "\r" + body[j:]
    return head + "\n" + body.replace(" #", " \u0080#", 1)  # a C1 control, as in mojibake


def _mutants(text: str) -> dict[str, tuple[str, str]]:
    reader = list(csv.reader(io.StringIO(text, newline="")))
    again = io.StringIO()
    csv.writer(again, lineterminator="\n").writerow(reader[1])
    first_id, label = reader[1][0], reader[1][1]
    other = "solution" if label != "solution" else "problem"
    word = max(reader[2][2].split(), key=len)
    out = {
        "label": (text.replace(f"{first_id},{label},", f"{first_id},{other},", 1),
                  f"label of id {first_id} is '{other}'"),
        "word": (text.replace(word, word[::-1] + "x", 1), r"text of id frames_tweets_\d+ differs"),
        "missing row": (text.replace(text[text.index(f"\n{reader[-1][0]},"):], "\n"),
                        f"missing \\(id {reader[-1][0]}\\)"),
        "added row": (text + f"{reader[-1][0][:-3]}99999,neutral,a new tweet{',' * (len(reader[0]) - 3)}\n",
                      "added"),
        "duplicated row": (text + again.getvalue(), "more than once"),
    }
    return out


def _put(kind: str, tmp_path: Path, monkeypatch, content: str):
    """Place ``content`` where source ``kind`` reads it; return the source= argument (or None)."""
    raw = content.encode("utf-8")
    empty = tmp_path / f"empty_{kind}"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("HACKRISK_DATA_DIR", str(empty))
    cache = tmp_path / f"cache_{kind}_{abs(hash(content)) % 10**8}"
    monkeypatch.setenv("HACKRISK_CACHE", str(cache))
    if kind == "mirror":
        (empty / "llmhacking").mkdir(exist_ok=True)
        (empty / "llmhacking" / f"{_NAME}.csv.gz").write_bytes(gzip.compress(raw))
    elif kind == "cache":
        (cache / "data" / "llmhacking").mkdir(parents=True)
        (cache / "data" / "llmhacking" / f"{_NAME}.csv").write_bytes(raw)
    elif kind == "download":
        monkeypatch.delenv("HACKRISK_OFFLINE", raising=False)

        class _Resp(io.BytesIO):
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        monkeypatch.setattr(T.urllib.request, "urlopen", lambda url, timeout=None: _Resp(raw))
    elif kind == "source":
        path = tmp_path / f"copy_{abs(hash(content)) % 10**8}.csv"
        path.write_bytes(raw)
        return path
    return None


@pytest.mark.parametrize("kind", ["mirror", "cache", "download", "source"])
def test_invisible_differences_load_content_differences_are_refused(mirror, tmp_path, monkeypatch, kind):
    text = _raw(mirror, _NAME)
    variant = _invisible_variant(text)
    assert variant != text and T.visible_text(variant) == T.visible_text(text)
    source = _put(kind, tmp_path, monkeypatch, variant)
    td = T.load_paper_task(_NAME, source=source)
    prov = td.info["provenance"]
    assert len(td.items) == 593 and prov["checked"] == "content" and prov["invisible_differences"]
    assert prov["sha256"] != T.hashlib.sha256(text.encode()).hexdigest()
    if kind == "download":  # a verified download lands in the cache
        assert (Path(os.environ["HACKRISK_CACHE"]) / "data" / "llmhacking" / f"{_NAME}.csv").is_file()
    for what, (bad, message) in _mutants(text).items():
        source = _put(kind, tmp_path, monkeypatch, bad)
        with pytest.raises(ValueError, match=message) as info:
            T.load_paper_task(_NAME, source=source)
        assert "Fix:" in str(info.value), what
        if kind == "download":  # a refused download leaves nothing in the cache
            folder = Path(os.environ["HACKRISK_CACHE"]) / "data" / "llmhacking"
            assert not folder.exists() or not any(folder.iterdir())


def test_held_out_changes_are_refused(mirror, tmp_path):
    text = _raw(mirror, "stance_climate")
    header, rest = text.split("\n", 1)
    cases = {
        "renamed column": (text.replace("av_rating", "avg_rating", 1), "columns differ"),
        "rows reordered": (header + "\n" + "\n".join(reversed(rest.rstrip("\n").split("\n"))) + "\n",
                           "different order|differs"),
        "id of another form": (text.replace("stance_climate_0,", "climate_0,", 1), "published form"),
        "covariate changed": (text.replace(",1,", ",7,", 1), "outside the id, label and text"),
        "not UTF-8": (None, "not UTF-8"),
    }
    for what, (bad, message) in cases.items():
        path = tmp_path / f"{what.replace(' ', '_')}.csv"
        path.write_bytes(bad.encode("utf-8") if bad is not None else text.encode("utf-8")[:100] + b"\xff\xfe")
        with pytest.raises(ValueError, match=message):
            T.load_paper_task("stance_climate", source=path)


# ---- the tasks that are not mirrored -------------------------------------------------------------


def test_unmirrored_task_offline_names_file_commit_url_and_folder(mirror, tmp_path):
    with pytest.raises(ds.DataNotFoundError) as info:
        ds.load_task("emotion")
    msg = str(info.value)
    task = T.PAPER_TASKS["emotion"]
    assert "data/all_data_processed/emotion.csv" in msg and task.commit in msg and task.url in msg
    assert str(mirror / "llmhacking") in msg and str(tmp_path / "cache" / "data" / "llmhacking") in msg
    assert "HACKRISK_OFFLINE" in msg


def _synthetic_copy(name: str, labels: list[str], chars: int) -> str:
    """A file with the published header, ids and character count (not the real texts: a stand-in
    for a real copy, which cannot be fetched without a network)."""
    task = T.PAPER_TASKS[name]
    prefix = task.id_pattern.split("_\\d")[0].replace("\\", "")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(task.columns)
    for i, lab in enumerate(labels):
        row = {c: "" for c in task.columns}
        row.update({task.id: f"{prefix}_{i}", task.label: lab, task.text: f"text number {i}"})
        w.writerow([row[c] for c in task.columns])
    body = buf.getvalue()
    pad = chars - len(body)
    assert pad > 0
    rows = body.split("\n")
    rows[1] = rows[1].replace("text number 0", "text number 0 " + "x" * (pad - 1), 1)
    return "\n".join(rows)


def test_unmirrored_task_from_source_checked_by_fingerprint(mirror, tmp_path):
    task = T.PAPER_TASKS["tone"]
    copy = _synthetic_copy("tone", ["negative", "", "positive", "neutral", "negative"], task.chars)
    path = tmp_path / "tone.csv"
    path.write_text(copy, encoding="utf-8", newline="")
    td = ds.load_task("tone", source=path)
    assert td.info["provenance"]["checked"] == "fingerprint" and len(td.items) == 5
    assert td.items["truth"].isna().sum() == 1  # an empty label cell is an unlabelled item
    assert td.classes == ("positive", "neutral", "negative")
    td2 = ds.load_task("tone", source=tmp_path)  # a folder holding tone.csv
    assert td2.info["provenance"]["sha256"] == td.info["provenance"]["sha256"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "tone.csv").write_text(copy.replace("number 2", "number 2y"), encoding="utf-8", newline="")
    with pytest.raises(ValueError, match="552,215 characters"):
        ds.load_task("tone", source=tmp_path / "bad")
    # classes not in the registry (only a first chunk was read) are added, sorted, after the known ones
    emo = T.PAPER_TASKS["emotion"]
    path = tmp_path / "emotion.csv"
    path.write_text(_synthetic_copy("emotion", ["neutral", "grief", "caring"], emo.chars), encoding="utf-8",
                    newline="")
    td = ds.load_task("emotion", source=path)
    assert td.classes[: len(emo.classes)] == emo.classes and td.classes[-2:] == ("caring", "grief")
    assert td.info["classes_seen_only"] == ["caring", "grief"]


def test_registry_table_columns():
    reg = T.list_paper_tasks().set_index("name")
    assert reg.loc["stance_climate", "authors_prompts"] == 5
    assert reg.loc["framesII_tweets17", "n_classes"] == 15
    assert reg.loc["topic", "hypothesis_covariates"] == ["senate", "democrat", "ideology"]
    assert reg.loc["stance_climate", "hypothesis_covariates"] == []
    assert pd.isna(reg.loc["misinfo", "rows"]) and reg.loc["framesI_news", "rows"] == 326


def test_mirrored_tasks_prompts_authors_first_fill_and_origins():
    """Every mirrored task has >= 3 registered prompts: the authors' (quoted, named by the loader's form)
    first, then hackrisk-made paraphrases only where fewer than 3 one-string prompts are published; every
    template fills with {text} alone; the authors' answer mappings point at the task's classes."""
    from hackrisk import _paper_tasks as F

    for t in T.PAPER_TASKS.values():
        if not t.mirrored:
            continue
        origins = [p[2] for p in t.prompts]
        assert len(t.prompts) >= 3 and origins[0] == "authors", (t.name, origins)
        assert origins == sorted(origins), t.name  # "authors" before "hackrisk"
        n_authors = origins.count("authors")
        assert origins.count("hackrisk") == (max(0, 3 - n_authors) if t.name != "stance_climate" else 0), t.name
        assert len({p[0] for p in t.prompts}) == len(t.prompts) and len({p[1] for p in t.prompts}) == len(t.prompts)
        for pid, template, origin in t.prompts:
            filled = template.format(text="<<ITEM>>")
            assert filled.count("<<ITEM>>") == 1 and "{" not in filled.replace("{{", ""), (t.name, pid)
            assert pid.startswith("authors_" if origin == "authors" else "hackrisk_paraphrase_"), (t.name, pid)
        for pid, mapping in t.answers.items():
            assert pid in {p[0] for p in t.prompts} and set(mapping.values()) <= set(t.classes), (t.name, pid)
        assert t.prompt_note and ("load_data_and_prompts.py" in t.prompt_note), t.name
    # the loader's texts, spot-checked against words quoted from data/gilardi_et_al_pnas/load_data_and_prompts.py
    frames = dict((p[0], p[1]) for p in T.PAPER_TASKS["framesI_tweets23"].prompts)
    assert frames["authors_2023_paper"].startswith("For this task, you will be asked to annotate a sample of tweets")
    assert frames["authors_2023_paper"].endswith("for users or stakeholders.\nHere's the tweet I picked, please label it "
                                                 "as 'Problem', 'Solution', or 'Neutral' by answering with one word:\n{text}")
    assert "A: Text describes content moderation as a PROBLEM" in frames["authors_2024_zero_shot"]
    assert "A: Tweet describes" in dict((p[0], p[1]) for p in T.PAPER_TASKS["framesI_tweets"].prompts)[
        "authors_2024_zero_shot"]
    rel = dict((p[0], p[1]) for p in T.PAPER_TASKS["relevance_tweets23"].prompts)
    assert "without any more explanation  here's the tweet I picked" in rel["authors_2023_code"]
    f2 = dict((p[0], p[1]) for p in T.PAPER_TASKS["framesII_tweets17"].prompts)
    assert "artificial intelligence)." not in f2["authors_2023_paper"]  # Appendix B + G, not A
    assert "viewpoint.Political content, as described above" in f2["authors_2023_paper"]
    assert "Now, which of the above frames" in f2["authors_2024_zero_shot"]
    assert "Now, which of the bellow frames" in dict((p[0], p[1]) for p in T.PAPER_TASKS["framesII_tweets"].prompts)[
        "authors_2024_zero_shot"]
    assert set(F._HK_PARAPHRASES) <= {t.name for t in T.PAPER_TASKS.values()}


def test_hackrisk_paraphrases_pass_the_paraphrase_checks():
    """The stored hackrisk-made paraphrases are what hackrisk.annotate.task.paraphrase accepts: replaying each
    as the backend's reply returns it (placeholders, class names and keys kept), and a reply that drops a
    class name the original mentions is rejected."""
    from hackrisk import _paper_tasks as F
    from hackrisk.annotate.task import TaskSpec, paraphrase

    class Replay:
        def __init__(self, reply):
            self.reply = reply

        def generate(self, messages_list, **kw):
            return [self.reply] * len(messages_list)

    assert F._HK_PARAPHRASES, "no hackrisk-made paraphrases stored"
    for name, texts in F._HK_PARAPHRASES.items():
        t = T.PAPER_TASKS[name]
        source = dict((p[0], p[1]) for p in t.prompts)["authors_2024_zero_shot"]
        spec = TaskSpec(name, t.classes, [source])
        for text in texts:
            assert paraphrase(source, spec, Replay(text), n=1, max_tries=1) == [text], name
        broken = texts[0].replace("OTHER", "MISC").replace("Other", "Misc").replace("other", "misc")
        assert paraphrase(source, spec, Replay(broken), n=1, max_tries=1) == [], name


def test_long_news_texts_truncation_named_and_recorded(monkeypatch, tmp_path, caplog):
    """framesI_news: a text longer than the model's context is cut, never silently: the backend logs how
    many texts were cut to what length for which context, and the cube marks each one (annotate_status
    bit 1) while the others stay unmarked. With the embedded model's context (4,096 tokens) every news text
    fits under every registered prompt, so the suite's news labels are made from whole texts."""
    import logging

    import numpy as np

    from hackrisk.annotate import TaskSpec, annotate
    from hackrisk.annotate.backends.local import TransformersBackend
    from hackrisk.annotate.models import tiny_random_model
    from hackrisk.annotate.runner import STATUS_TRUNCATED

    from ._data import shared_data_dir

    monkeypatch.setenv("HACKRISK_DATA_DIR", str(shared_data_dir()))  # the model cache stays where it is
    monkeypatch.setenv("HACKRISK_OFFLINE", "1")
    news = T.load_paper_task("framesI_news")
    items = news.items.assign(n=news.items["text"].str.len()).sort_values("n").iloc[[0, 1, -2, -1]]
    net, tok = tiny_random_model(seed=0)
    spec = TaskSpec("framesI_news", news.classes, {"short": "Frame of this article: {text}"})
    n_tok = np.array([len(tok(t, add_special_tokens=False)["input_ids"]) for t in items["text"]])
    small = TransformersBackend(net, tok, name="tiny", max_length=4096)
    overhead = len(small._encode(small.render(spec.render("short", ""))))
    small.max_length = ctx = overhead + 32 + int(n_tok[1] + n_tok[2]) // 2  # the two short texts fit, not the long
    with caplog.at_level(logging.WARNING, logger="hackrisk.annotate.backends.local"):
        cube = annotate(items[["item_id", "text", "truth"]], spec, models=small, cache=tmp_path / "c.sqlite",
                        progress=False)
    cut = n_tok > ctx - overhead - 32
    assert cut.any() and not cut.all()
    status = cube["annotate_status"].values[0, 0, 0, 0]
    assert ((status & STATUS_TRUNCATED) > 0).tolist() == cut.tolist()
    assert (cube["label"].values >= 0).all()  # cut texts are annotated, not dropped
    assert any("texts cut to" in r.getMessage() and f"context of {ctx} tokens" in r.getMessage() for r in caplog.records)
    # the embedded model's context (min(8192, 4096) tokens): nothing is cut under any registered prompt
    full = TransformersBackend(net, tok, name="ctx4096", max_length=4096)
    reg = TaskSpec("framesI_news", news.classes, {p[0]: p[1] for p in T.PAPER_TASKS["framesI_news"].prompts})
    for pid in reg.prompt_ids:
        _, cut4096 = full.prepare_texts(news.items["text"].tolist(), lambda text, _p=pid: reg.render(_p, text))
        assert not cut4096.any(), pid


# ---- the suite -----------------------------------------------------------------------------------

SUITE = Path(__file__).resolve().parents[1] / "hackrisk" / "studies" / "paper-tasks.toml"


def test_paper_suite_validates_and_covers_every_mirrored_task(mirror, tmp_path):
    from hackrisk import suite

    rows = suite.validate_suite(SUITE)
    assert {r["task"] for r in rows} == set(README_COUNTS)
    studies = {s.task["name"]: s for s in suite.load_suite(SUITE)}
    for r in rows:
        st = studies[r["task"]]
        assert r["temperatures"] == 3 and st.models[0]["model"] == "default" and r["models"] == 1
        assert r["prompts"] == len(T.PAPER_TASKS[r["task"]].prompts)  # each task's registered prompts
        assert 10 <= r["items"] <= 100 and r["prompts"] >= 3
    # score mode: one pass per (item, prompt) gives the 3 temperatures. Measured from scratch on 2 quiet
    # cores (docs/tasks.md): 1,632 passes (60 items per task, 24 news) in 9 min 40 s wall, 1,055 CPU s, the
    # news and Frames II passes the costliest; a suite within 2,000 passes stays well inside 30 minutes
    passes = {r["task"]: r["labels"] // r["temperatures"] for r in rows}
    assert sum(passes.values()) <= 2000
    assert passes["framesI_news"] <= 3 * 30  # news articles: ~2x a tweet pass, fewer items
    # the written per-task study files run through the ordinary `hackrisk validate`
    from hackrisk.cli import main

    paths = suite.write_suite(SUITE, tmp_path / "studies")
    assert len(paths) == 9
    assert main(["validate", str(paths[-1])]) == 0
    # `hackrisk validate` takes the suite file itself, and a broken suite exits 2 naming the entry
    assert main(["validate", str(SUITE)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(SUITE.read_text().replace('dataset = "stance_climate"', 'dataset = "stance_climate"\ncolour = 1'))
    assert main(["validate", str(bad)]) == 2


def test_suite_errors_name_the_entry(tmp_path):
    from hackrisk import suite
    from hackrisk.study import StudyError

    base = '[study]\nname = "s"\n[[models]]\nname = "m"\nmodel = "tiny-random"\n'
    cases = {
        "": "no \\[\\[tasks\\]\\]",
        '[[tasks]]\nn_items = 5\n': "entry 1: needs dataset",
        '[[tasks]]\ndataset = "tone"\ncolour = 1\n': "unknown key",
        '[[tasks]]\ndataset = "tone"\n[[tasks]]\ndataset = "tone"\n': "appears twice",
        '[data]\ndataset = "tone"\n[[tasks]]\ndataset = "tone"\n': "not allowed in a suite",
        '[[tasks]]\ndataset = "tone"\nn_items = 1\n': "n_items",
        '[[tasks]]\ndataset = "vader_tweets"\nprompts = "registry"\n': "no registered prompts",
    }
    for k, (extra, message) in enumerate(cases.items()):
        path = tmp_path / f"s{k}.toml"
        path.write_text(base + extra)
        with pytest.raises(StudyError, match=message):
            suite.load_suite(path)


def test_suite_end_to_end_tiny_model(mirror, tmp_path):
    """annotate + analyze + report of a two-task suite with the seeded tiny random model (stance_climate with
    its registered prompts; framesII_tweets17 with a short prompt of the suite file)."""
    from hackrisk import pipeline, suite

    path = tmp_path / "suite.toml"
    path.write_text(
        '[study]\nname = "tiny"\noutput = "out"\nseed = 0\n[annotate]\ntemperatures = [0.0, 1.0]\n'
        '[[models]]\nname = "tiny"\nmodel = "tiny-random"\n[analysis]\nn_boot = 20\nbudgets = []\n'
        '[[tasks]]\ndataset = "stance_climate"\nn_items = 12\n'
        '[[tasks]]\ndataset = "framesII_tweets17"\nn_items = 12\n'
        # the authors' Frames II prompts (over 1,000 tokens) exceed the tiny model's 512-token context
        'prompts = ["Policy frame of this tweet: {text}"]\n')
    for st in suite.load_suite(path):
        cube = pipeline.annotate_study(st, progress=False)
        assert cube.sizes["item"] == 12 and cube.sizes["temperature"] == 2
        assert int((cube["label"] < 0).sum()) == 0
        assert st.output == tmp_path / "out" / st.task["name"]
        res = pipeline.analyze_study(st, cube)
        report = pipeline.report_study(st, res, cube)
        assert report.is_file()


# ---- your task beside the paper's ----------------------------------------------------------------


def test_place_task_table_and_figure():
    import matplotlib

    matplotlib.use("Agg")
    from hackrisk.analysis.crosstask import place_task, task_risk_table
    from hackrisk.analysis.frequentist import test_hypotheses
    from hackrisk.analysis.risk import risk
    from hackrisk.hypotheses import generate_hypotheses
    from hackrisk.simulate import simulate_multiverse

    suite_cube, _ = simulate_multiverse(n_tasks=3, n_items=200, models=2, n_prompts=2, temperatures=(0.0, 1.0),
                                        rng=1)
    suite_tests = test_hypotheses(suite_cube, generate_hypotheses(suite_cube))
    mine, _ = simulate_multiverse(n_tasks=1, n_items=200, models=2, n_prompts=2, temperatures=(0.0, 1.0),
                                  model_accuracy=[0.6, 0.55], rng=2)
    table, fig = place_task(mine, {"paper": suite_tests}, n_boot=50)
    assert len(table) == 4 and int(table["yours"].sum()) == 1
    assert table["risk_balanced"].is_monotonic_decreasing and table["rank"].tolist() == [1, 2, 3, 4]
    # parity: the suite rows are risk(tests, by="task") itself
    direct = risk(suite_tests, by="task", n_boot=0)
    theirs = table[~table["yours"]].set_index("task")
    for task in direct["task"].values:
        est = float(direct["risk_balanced"].sel(task=task, ci="estimate"))
        assert theirs.loc[str(task), "risk_balanced"] == pytest.approx(est)
    row = table[table["yours"]].iloc[0]
    assert row["source"] == "yours" and 0.0 <= row["share_below"] <= 1.0
    assert row["share_below"] == pytest.approx(float((theirs["risk_balanced"] < row["risk_balanced"]).mean()))
    assert row["risk_balanced_lower"] <= row["risk_balanced"] <= row["risk_balanced_upper"]
    assert len(fig.axes[0].get_yticklabels()) == 4
    with pytest.raises(ValueError, match="metric"):
        task_risk_table(suite_tests, metric="accuracy")
    with pytest.raises(ValueError, match="label cube"):
        place_task(xr_dataset_without_labels(), suite_tests)


def xr_dataset_without_labels():
    import xarray as xr

    return xr.Dataset({"x": ("i", [1, 2])})
