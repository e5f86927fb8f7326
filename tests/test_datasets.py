"""Loaders against the mirror in ../shared/data (rows, label sets, dtypes, content checks) and offline errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hackrisk
from hackrisk import datasets as ds

from ._data import offline_mirror


@pytest.fixture
def mirror(monkeypatch, tmp_path) -> Path:
    return offline_mirror(monkeypatch, tmp_path)


@pytest.fixture
def nothing(monkeypatch, tmp_path):
    """No mirror, empty cache, downloads disabled."""
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("HACKRISK_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HACKRISK_OFFLINE", "1")
    monkeypatch.setenv("HACKRISK_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_registry_checksums_match_manifest(mirror):
    manifest = pd.read_csv(mirror / "MANIFEST.tsv", sep="\t").set_index("path")
    for name, entry in ds.LLMHACKING_TASKS.items():
        assert manifest.loc[entry.path, "sha256"] == entry.sha256_gz
        assert manifest.loc[entry.path, "rows"] == entry.rows
        data = (mirror / entry.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256_gz
        assert hashlib.sha256(gzip.decompress(data)).hexdigest() == entry.sha256_csv, name
    for name, entry in ds.VADER_TASKS.items():
        for kind in ("GroundTruth", "anonDataRatings"):
            path = f"vader/{name}_{kind}.tsv.gz"
            assert manifest.loc[path, "sha256"] == entry.sha256_gz[kind]
            assert manifest.loc[path, "rows"] == entry.rows
            raw = gzip.decompress((mirror / path).read_bytes())
            assert hashlib.sha256(raw).hexdigest() == entry.sha256_txt[kind]
    from hackrisk.tasks import PAPER_TASKS

    assert set(ds.LLMHACKING_TASKS) <= set(PAPER_TASKS)
    assert set(ds.list_tasks()["name"]) == set(PAPER_TASKS) | {f"vader_{n}" for n in ds.VADER_TASKS}


LLMH_COUNTS = {
    "framesI_tweets23": {"neutral": 139, "solution": 6, "problem": 5},
    "relevance_tweets23": {"irrelevant": 217, "relevant": 194},
}


@pytest.mark.parametrize("name", sorted(LLMH_COUNTS))
def test_llmhacking_loader(mirror, name):
    td = ds.load_task(name)
    items, classes = td  # tuple unpacking works
    assert td.name == name and classes == ds.LLMHACKING_TASKS[name].classes
    assert len(items) == ds.LLMHACKING_TASKS[name].rows
    assert items["truth"].value_counts().to_dict() == LLMH_COUNTS[name]
    assert set(items["truth"]) <= set(classes)
    assert list(items.columns[:4]) == ["task", "item_id", "text", "truth"]
    assert items["item_id"].is_unique and (items["task"] == name).all()
    assert isinstance(items["created_at"].dtype, pd.DatetimeTZDtype) and str(items["created_at"].dt.tz) == "UTC"
    assert items["created_at"].min() >= pd.Timestamp("2023-01-01", tz="UTC")
    assert items["created_at"].max() < pd.Timestamp("2023-02-01", tz="UTC")
    assert isinstance(items["user_id"].dtype, pd.CategoricalDtype)
    assert isinstance(items["screen_name"].dtype, pd.CategoricalDtype)
    assert items["user_id"].cat.categories.map(len).min() > 3  # ids kept as strings, not floats
    assert td.covariates == ["created_at", "user_id", "screen_name"]
    # ratings: both experts agree with the reference label everywhere; two crowd labels per item
    r = td.ratings
    expert = r[r["kind"] == "expert"]
    merged = expert.merge(items[["item_id", "truth"]], on="item_id")
    assert len(merged) == 2 * len(items) and (merged["rating"] == merged["truth"]).all()
    crowd = r[r["kind"] == "crowd"]
    assert set(crowd["rating"]) <= set(classes)
    assert crowd.groupby("item_id").size().min() == 2
    assert all("{text}" in p for p in td.prompts) and len(td.prompts) >= 2
    assert td.source.endswith(ds.LLMHACKING_TASKS[name].path)


VADER_SIGNS = {  # sign of the mean rating (README of the mirror): positive, negative, zero
    "tweets": (2897, 1299, 4),
    "movieReviewSnippets": (5242, 5326, 37),
    "nytEditorialSnippets": (2204, 2742, 244),
    "amazonReviewSnippets": (2128, 1482, 98),
}
VADER_RATERS = {"tweets": (20, 99), "movieReviewSnippets": (15, 29),
                "nytEditorialSnippets": (20, 20), "amazonReviewSnippets": (20, 20)}


@pytest.mark.parametrize("name", sorted(VADER_SIGNS))
def test_vader_loader(mirror, name):
    td = ds.load_vader(name, neutral_band=0.0)
    items = td.items
    assert td.name == f"vader_{name}" and td.classes == ("negative", "neutral", "positive")
    assert len(items) == ds.VADER_TASKS[name].rows and items["item_id"].is_unique
    pos, neg, zero = VADER_SIGNS[name]
    assert items["truth"].value_counts().to_dict() == {k: v for k, v in
                                                       {"positive": pos, "negative": neg, "neutral": zero}.items() if v}
    assert items["mean_rating"].dtype == np.float64 and items["sd_rating"].dtype == np.float64
    assert items["n_raters"].dtype == np.int64
    assert (items["n_raters"].min(), items["n_raters"].max()) == VADER_RATERS[name]
    # ratings: integers -4..4, one row per rating, their mean and population SD as published
    r = td.ratings
    assert len(r) == items["n_raters"].sum() and r["rating"].between(-4, 4).all()
    stats = r.groupby("item_id")["rating"].agg(["mean", lambda x: x.std(ddof=0)])
    stats = stats.reindex(items["item_id"])
    np.testing.assert_allclose(stats["mean"].to_numpy(), items["mean_rating"].to_numpy(), atol=1e-12)
    np.testing.assert_allclose(stats.iloc[:, 1].to_numpy(), items["sd_rating"].to_numpy(), atol=1e-4)
    # the default neutral band moves items with |mean| < 0.5 to neutral, nothing else
    banded = ds.load_vader(name).items
    expect = np.where(items["mean_rating"].abs() < 0.5, "neutral", items["truth"])
    assert (banded["truth"].to_numpy() == expect).all()
    if name in ("amazonReviewSnippets", "nytEditorialSnippets"):
        assert isinstance(items["document"].dtype, pd.CategoricalDtype)


def test_vader_amazon_join_on_id(mirror):
    items = ds.load_vader("vader_amazonReviewSnippets").items.set_index("item_id")
    # the two amazon files list ids in different orders: text and ratings must meet by id
    assert items.loc["1_1", "text"].startswith("troubleshooting ad-2500")
    assert items.loc["1_1", "mean_rating"] == pytest.approx(-0.9)
    assert (items["published_mean"] - items["mean_rating"]).abs().max() < 1e-3
    assert not items["text"].str.startswith("\ufeff").any() and not items.index.str.startswith("\ufeff").any()


def test_vader_tweets_published_mean_differs_for_199(mirror):
    items = ds.load_vader("tweets").items
    differs = ~np.isclose(items["published_mean"], items["mean_rating"], atol=1e-6)
    assert differs.sum() == 199 and (items.loc[differs, "n_raters"] > 20).all()
    with pytest.raises(ValueError, match="neutral_band"):
        ds.load_vader("tweets", neutral_band=-1)


def _fake_sdist(mirror: Path, dest: Path, names=("tweets",)) -> Path:
    """An archive laid out like the vaderSentiment-3.3.2 sdist, built from the mirror's bytes."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        for name in names:
            for kind in ("GroundTruth", "anonDataRatings"):
                data = gzip.decompress((mirror / "vader" / f"{name}_{kind}.tsv.gz").read_bytes())
                info = tarfile.TarInfo(f"hutto_ICWSM_2014/{name}_{kind}.txt")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    payload = inner.getvalue()
    with tarfile.open(dest, "w:gz") as tar:
        info = tarfile.TarInfo("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return dest


def test_vader_from_sdist_tarball(mirror, tmp_path):
    sdist = _fake_sdist(mirror, tmp_path / ds.VADER_SDIST)
    a = ds.load_vader("tweets", source=sdist)
    b = ds.load_vader("tweets")
    pd.testing.assert_frame_equal(a.items, b.items)
    pd.testing.assert_frame_equal(a.ratings, b.ratings)
    assert a.source == str(sdist)
    # the folder `pip download -d <dir>` wrote to, and the inner hutto_ICWSM_2014.tar.gz, work too
    assert ds.load_vader("tweets", source=tmp_path).source == str(sdist)
    with tarfile.open(sdist) as outer:
        inner = outer.extractfile(outer.getnames()[0]).read()
    (tmp_path / "hutto_ICWSM_2014.tar.gz").write_bytes(inner)
    c = ds.load_vader("tweets", source=tmp_path / "hutto_ICWSM_2014.tar.gz")
    pd.testing.assert_frame_equal(c.items, b.items)
    with pytest.raises(ValueError, match="no member"):
        ds.load_vader("nytEditorialSnippets", source=sdist)


def test_vader_from_real_sdist_if_available(mirror):
    """`make demo` path: set HACKRISK_VADER_SDIST to a pip-downloaded vaderSentiment-3.3.2.tar.gz."""
    path = os.environ.get("HACKRISK_VADER_SDIST")
    if not path:
        pytest.skip("HACKRISK_VADER_SDIST not set (pip download --no-deps --no-binary :all: vaderSentiment==3.3.2)")
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == ds.VADER_SDIST_SHA256
    for name in ds.VADER_TASKS:
        assert len(ds.load_vader(name, source=path).items) == ds.VADER_TASKS[name].rows


def test_offline_without_mirror_fails_clearly(nothing):
    for load, arg, fname in ((ds.load_llmhacking, "relevance_tweets23", "relevance_tweets23.csv.gz"),
                             (ds.load_vader, "tweets", "tweets_anonDataRatings.tsv.gz")):
        with pytest.raises(ds.DataNotFoundError) as info:
            load(arg)
        msg = str(info.value)
        assert fname in msg and "HACKRISK_DATA_DIR" in msg and "HACKRISK_OFFLINE" in msg
        assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)
    with pytest.raises(ValueError, match="registered"):
        ds.load_task("no_such_task")


def test_changed_label_is_refused_by_content(mirror, tmp_path, monkeypatch):
    bad = tmp_path / "bad"
    (bad / "llmhacking").mkdir(parents=True)
    raw = gzip.decompress((mirror / "llmhacking/framesI_tweets23.csv.gz").read_bytes())
    (bad / "llmhacking/framesI_tweets23.csv.gz").write_bytes(gzip.compress(raw.replace(b"neutral", b"neutrol", 1)))
    monkeypatch.setenv("HACKRISK_DATA_DIR", str(bad))
    with pytest.raises(ValueError, match="label of id frames_tweets23_0 is 'neutrol', published 'neutral'"):
        ds.load_llmhacking("framesI_tweets23")


def test_download_is_verified_and_cached(mirror, tmp_path, monkeypatch):
    """The download path without a network: urlopen is replaced by the mirror's bytes."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("HACKRISK_DATA_DIR", str(empty))
    monkeypatch.delenv("HACKRISK_OFFLINE")
    served: list[str] = []
    payload = {"ok": gzip.decompress((mirror / "llmhacking/relevance_tweets23.csv.gz").read_bytes())}

    class _Resp(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_urlopen(url, timeout=None):
        served.append(url)
        return _Resp(payload["ok"])

    monkeypatch.setattr(ds.urllib.request, "urlopen", fake_urlopen)
    td = ds.load_llmhacking("relevance_tweets23")
    assert len(served) == 1 and ds.LLMHACKING_COMMIT in served[0] and served[0].endswith("relevance_tweets23.csv")
    cached = tmp_path / "cache" / "data" / "llmhacking" / "relevance_tweets23.csv"
    assert cached.is_file() and len(td.items) == 411
    ds.load_llmhacking("relevance_tweets23")  # second time from the cache
    assert len(served) == 1
    # a corrupted download is refused and leaves nothing behind
    cached.unlink()
    payload["ok"] = payload["ok"][:-10]
    with pytest.raises(ValueError, match="content differs|published"):
        ds.load_llmhacking("relevance_tweets23")
    assert not any((tmp_path / "cache" / "data" / "llmhacking").iterdir())


def test_explicit_source_file_and_folder(mirror, tmp_path):
    copy = tmp_path / "copy.csv.gz"
    shutil.copy(mirror / "llmhacking/framesI_tweets23.csv.gz", copy)
    assert len(ds.load_llmhacking("framesI_tweets23", source=copy).items) == 150
    plain = tmp_path / "framesI_tweets23.csv"
    plain.write_bytes(gzip.decompress(copy.read_bytes()))
    assert len(ds.load_llmhacking("framesI_tweets23", source=tmp_path).items) == 150
    assert len(ds.load_vader("nytEditorialSnippets", source=mirror).items) == 5190


def test_load_table_csv_and_parquet(tmp_path):
    df = pd.DataFrame({
        "doc": ["d1", "d2", "d3", "d4"],
        "body": ["good", "bad", "fine", "awful"],
        "y": ["pos", "neg", "pos", None],
        "when": ["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"],
        "source": ["news", "blog", "news", "blog"],
        "score": [1.5, 2.0, 3.5, 4.0],
    })
    df.to_csv(tmp_path / "mine.csv", index=False)
    paths = [tmp_path / "mine.csv"]
    try:
        df.to_parquet(tmp_path / "mine.parquet")
        paths.append(tmp_path / "mine.parquet")
    except ImportError:  # no parquet engine installed: CSV only
        pass
    for path in paths:
        td = ds.load_table(path, text="body", label="y", id="doc")
        items = td.items
        assert td.name == "mine" and td.classes == ("neg", "pos")
        assert list(items["item_id"]) == ["d1", "d2", "d3", "d4"]
        assert items["truth"].isna().sum() == 1
        assert pd.api.types.is_datetime64_any_dtype(items["when"])
        assert isinstance(items["source"].dtype, pd.CategoricalDtype)
        assert items["score"].dtype == np.float64
    td = ds.load_table(df, text="body", label="y", covariates=["score"], task="t", classes=["pos", "neg", "meh"])
    assert td.covariates == ["score"] and td.classes == ("pos", "neg", "meh")
    assert list(td.items["item_id"]) == ["0", "1", "2", "3"]
    with pytest.raises(ValueError, match=r"\['txt'\]"):
        ds.load_table(df, text="txt", label="y")
    with pytest.raises(ValueError, match="not in classes"):
        ds.load_table(df, text="body", label="y", classes=["pos", "x"])
    with pytest.raises(ValueError, match="duplicate"):
        ds.load_table(df.assign(doc="same"), text="body", label="y", id="doc")
    with pytest.raises(ValueError, match="does not exist"):
        ds.load_table(tmp_path / "nope.csv", text="body", label="y")


def test_empty_cube(mirror):
    rel, fr = ds.load_task("relevance_tweets23"), ds.load_task("framesI_tweets23")
    cube = ds.empty_cube(rel, fr, models=["m1", "m2"], temperatures=(0.0, 1.0), n_items=40, rng=0)
    hackrisk.validate_cube(cube)
    assert (cube["label"] == -1).all()
    assert dict(cube["label"].sizes) == {"task": 2, "model": 2, "prompt": 3, "temperature": 2, "item": 40}
    back = hackrisk.items_table(cube, names=True)
    assert len(back) == 80 and set(back["task"]) == {"relevance_tweets23", "framesI_tweets23"}
    assert isinstance(back["user_id"].dtype, pd.CategoricalDtype)
    assert isinstance(back["created_at"].dtype, pd.DatetimeTZDtype)
    full = rel.items.set_index("item_id")
    sub = back[back["task"] == "relevance_tweets23"].set_index("item_id")
    assert (sub["truth"] == full.loc[sub.index, "truth"]).all()
    whole = ds.empty_cube(fr)
    assert int((whole["item_id"] != "").sum()) == 150


# ---- files are read as text (issue 17, case 3) ------------------------------------------------------


def test_csv_values_are_kept_as_written(tmp_path):
    path = tmp_path / "framing.csv"
    path.write_text("id,text,label,year\n"
                    "000,NA,None,2020\n"
                    "0,None,Problem,\n"
                    "1,null,None,2021\n"
                    "01,a text,,2022\n"
                    "1.0,another,Problem,2023\n", encoding="utf-8")
    td = ds.load_table(path, text="text", label="label", id="id", classes=["None", "Problem"])
    assert td.items["item_id"].tolist() == ["000", "0", "1", "01", "1.0"]  # no "0" for "000", no collision
    assert td.items["text"].tolist() == ["NA", "None", "null", "a text", "another"]
    assert td.items["truth"].tolist() == ["None", "Problem", "None", None, "Problem"]  # empty cell = missing
    assert td.items["year"].isna().tolist() == [False, True, False, False, False]
    assert td.items["year"].dtype.kind == "f"  # a numeric covariate stays numeric
    cube = ds.empty_cube(td, prompts={td.name: ["{text}"]})
    back = hackrisk.cube.items_table(cube, names=True)
    assert back["item_id"].tolist() == td.items["item_id"].tolist()
    assert back["truth"].tolist() == td.items["truth"].tolist()
    # a label column with one blank cell keeps "1" as "1" (it used to become "1.0")
    path.write_text("id,text,label\na,x,1\nb,y,\nc,z,2\n", encoding="utf-8")
    td = ds.load_table(path, text="text", label="label", id="id")
    assert td.classes == ("1", "2") and td.items["truth"].tolist() == ["1", None, "2"]


def test_table_errors_name_the_file(tmp_path):
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("id,text\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.csv' is not valid UTF-8 .*Fix: save the file as UTF-8"):
        ds.load_table(bad, text="text", label=None, id="id")
    with pytest.raises(ValueError, match="is a folder, not a file"):
        ds.load_table(tmp_path, text="text", label=None)
    (tmp_path / "dup.csv").write_text("id,text\n1,a\n1,b\n")
    with pytest.raises(ValueError, match="duplicate values"):
        ds.load_table(tmp_path / "dup.csv", text="text", label=None, id="id")
    (tmp_path / "noid.csv").write_text("id,text\n1,a\n,b\n")
    with pytest.raises(ValueError, match=r"id column 'id' is empty in row\(s\) \[3\]"):
        ds.load_table(tmp_path / "noid.csv", text="text", label=None, id="id")
    with pytest.raises(TypeError, match="path must be a file path or a pandas DataFrame"):
        ds.load_table(3, text="text", label=None)


def test_parquet_keeps_types_and_marks_missing(tmp_path):
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({"id": ["000", "01", "1"], "text": ["NA", "x", "y"],
                       "label": pd.array([1, None, 2], dtype="Int64")})
    df.to_parquet(tmp_path / "t.parquet")
    td = ds.load_table(tmp_path / "t.parquet", text="text", label="label", id="id")
    assert td.items["item_id"].tolist() == ["000", "01", "1"]
    assert td.items["truth"].tolist() == ["1", None, "2"] and td.classes == ("1", "2")


_TRICKY = ["None", "NA", "N/A", "null", "nan", "NaN", "000", "0", "00", "1", "01", "1.0", "1e3", "-0",
           " 1", "1 ", " ", "TRUE", "true", "#N/A", "<NA>", "é", "日本", "a,b", 'q"uote', "tab\there"]


def _cell():
    from hypothesis import strategies as st

    chars = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n")
    return st.one_of(st.sampled_from(_TRICKY), st.text(chars, min_size=1, max_size=6))


def test_property_ids_and_labels_round_trip_from_csv(tmp_path_factory):
    """Arbitrary ids and label names: CSV -> TaskData -> cube -> zarr -> tables, unchanged."""
    import csv

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(ids=st.lists(_cell(), min_size=2, max_size=8, unique=True),
           names=st.lists(_cell(), min_size=2, max_size=4, unique=True),
           data=st.data())
    def check(ids, names, data):
        names = [n for n in names if n != "<outside>"]
        if len(names) < 2:
            return
        truth = [data.draw(st.one_of(st.none(), st.sampled_from(names))) for _ in ids]
        folder = tmp_path_factory.mktemp("rt")
        path = folder / "items.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "text", "label"])
            for i, t in zip(ids, truth, strict=True):
                w.writerow([i, f"text of {i}", "" if t is None else t])
        td = ds.load_table(path, text="text", label="label", id="id", classes=names)
        assert td.items["item_id"].tolist() == ids
        assert td.items["truth"].tolist() == truth
        cube = ds.empty_cube(td, prompts={td.name: ["{text}"]})
        # LLM labels given by name (every class, cycled) round-trip as well
        labels = pd.DataFrame({"task": td.name, "model": "m", "prompt": "p0", "temperature": 0.0,
                               "item_id": ids, "label": [names[k % len(names)] for k in range(len(ids))]})
        cube = hackrisk.make_cube(labels, td.items, {td.name: list(names)}, prompts={td.name: ["{text}"]})
        back = hackrisk.open_cube(hackrisk.save_cube(cube, folder / "c.zarr"), lazy=False)
        items = hackrisk.cube.items_table(back, names=True)
        assert items["item_id"].tolist() == ids and items["text"].tolist() == [f"text of {i}" for i in ids]
        assert [None if v is None else v for v in items["truth"]] == truth
        long = hackrisk.to_long(back, names=True)
        assert long["item_id"].tolist() == ids and long["label"].tolist() == labels["label"].tolist()
        assert list(back["class_name"].values[0, : len(names)]) == names

    check()
