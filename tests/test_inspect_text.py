"""The Inspect page's texts and click decoding (sigreg_core/present/inspect_text.py, split from the page)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from sigreg_core.present import inspect_text as IT


def test_point_slice_reads_customdata_in_every_shape_plotly_sends():
    assert IT.point_slice({"customdata": [17, 0.3]}) == 17
    assert IT.point_slice({"customdata": {"1": 0.3, "0": 42.0}}) == 42  # a dict: keys in index order
    assert IT.point_slice({"customdata": 5.0}) == 5
    assert IT.point_slice({"customdata": [float("nan")]}) is None
    assert IT.point_slice({"customdata": "x"}) is None
    assert IT.point_slice({}) is None


def test_file_stem_is_a_safe_name_with_the_view():
    assert IT.file_stem({"name": "/data/run 1/step_10.safetensors"}) == "step_10"
    assert IT.file_stem({"name": "C:\\x\\a$b.npy", "view": 2}) == "a_b_view2"
    assert IT.file_stem({}) == "embeddings"


def test_compute_time_says_when_it_is_a_cache_hit():
    assert IT.compute_time_metric("computed", 1.234)[1] == "1.23 s"
    label, value, helptext = IT.compute_time_metric("background", 2.5)
    assert value == "cached" and "background" in helptext and "2.50 s" in helptext


def test_summary_caption_and_evidence_refs():
    s = {"n": 2048, "d": 64, "m": 1024, "family": "random", "preset": "gist", "seed": 3, "device": "cpu",
         "null_quantiles_source": "exact law", "null_draws": 1000}
    cap = IT.summary_caption(s)
    assert "N = 2,048 rows" in cap and "preset `gist`" in cap and "seed 3 " in cap and "1000 draws" in cap
    refs = IT.evidence_refs({"heavy_tails": {"slice": {"screen": "axes", "index": 7}}, "scale": "no slice",
                             "odd": {"slice": {"screen": "elsewhere", "index": 1}}})
    assert refs == [("heavy_tails", "coordinate", 7, "Show heavy tails: axes slice 7",
                     "Opens slice 7 of the coordinate family, where the evidence was found.")]


def test_refusal_names_the_control_and_cloud_caption_gives_the_base_rate():
    msg = IT.name_the_control("3 rows are not finite; pass drop_nonfinite=True (CLI --drop-nonfinite)")
    assert "Drop non-finite rows" in msg and "CLI" not in msg
    view = SimpleNamespace(note="rows on the top-2 principal axes", rule="beyond the 99.9 % radius",
                           outlier_rows=np.arange(3), n_total=2048, expected_outliers=2.048)
    cap = IT.cloud_caption(view)
    assert "3 of 2,048 rows" in cap and "about 2 by chance" in cap


def test_loaded_record_keys_the_cache_to_the_bytes_scored_and_the_load_options():
    from sigreg_core.inputs.loading import load_embeddings
    from sigreg_core.inputs.samples import DEFAULT_SAMPLE, list_samples

    s = {x.name: x for x in list_samples()}[DEFAULT_SAMPLE]
    emb = load_embeddings(s.path, key=s.key, max_rows=1000)
    a = IT.loaded_record(emb, {"kind": "sample", "name": s.name}, ("sample", s.name, 1000))
    b = IT.loaded_record(emb, {"kind": "sample", "name": s.name}, ("sample", s.name, 2000))
    assert a["digest"].startswith(emb.data_sha256) and a["digest"] != b["digest"]  # the row limit is in the key
    assert a["array"].shape == emb.array.shape and a["original_rows"] == emb.original_shape[-2]
    assert a["source"]["sha256"] == emb.sha256 and a["source"]["name"] == s.name
