"""The file layouts between the stages: every writer's file reads back exactly, with the
dtypes of the layout, and bad files are refused naming the file and the key."""

import h5py
import numpy as np
import pandas as pd
import pytest

from encscale import contracts
from encscale.contracts import FeatureSet, Fit, LayerMap, Responses, Split
from encscale.io import open_h5

RNG = np.random.default_rng(0)
V = 6  # columns of the responses


def datasets(path) -> dict[str, tuple[np.dtype, tuple]]:
    """Every dataset of an HDF5 file: its dtype and shape."""
    out = {}
    with h5py.File(path) as h5:
        h5.visititems(
            lambda k, v: (
                out.__setitem__(k, (v.dtype, v.shape)) if isinstance(v, h5py.Dataset) else None
            )
        )
    return out


def assert_same(a, b) -> None:
    """Equal arrays of the same dtype (NaN equal to NaN), or both None."""
    if a is None or b is None:
        assert a is None and b is None
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    np.testing.assert_array_equal(a, b)


def split(n: int, **extra) -> Split:
    return Split(
        responses=RNG.normal(size=(n, V)).astype(np.float32),
        stimulus=np.arange(n, dtype=np.int64)[::-1].copy(),
        **extra,
    )


def volume_responses() -> Responses:
    mask = np.zeros((3, 2, 2), dtype=bool)
    mask.flat[[0, 2, 3, 7, 8, 11]] = True
    return Responses(
        train=split(5, n_repeats=np.full(5, 3, dtype=np.int32)),
        test=split(2, n_repeats=np.array([3, 2], dtype=np.int32)),
        noise_ceiling=np.linspace(0, 90, V).astype(np.float32),
        ncsnr=np.linspace(0, 2, V).astype(np.float32),
        rois={
            ("streams", "early"): np.arange(V) < 2,
            ("streams", "ventral"): np.arange(V) >= 4,
            ("floc-faces", "FFA-1"): np.arange(V) == 3,
        },
        voxel_ijk=np.argwhere(mask).astype(np.int32),
        mask=mask,
        affine=np.diag([1.8, 1.8, 1.8, 1.0]),
        attrs=dict(subject="subj01", beta_version="betas_fithrf_GLMdenoise_RR", n_sessions=5),
    )


def read_all_parts(path, **kwargs) -> Responses:
    return contracts.read_responses(path, optional=contracts.RESPONSE_PARTS, **kwargs)


# --- stimuli -----------------------------------------------------------------------------


def test_image_stimuli_round_trip(tmp_path):
    path = tmp_path / "stimuli.h5"
    ids = np.array([3, 17, 40], dtype=np.int32)
    images = RNG.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    with contracts.create_image_stimuli(path, ids, images.shape[1:]) as dset:
        dset[:2] = images[:2]
        dset[2:] = images[2:]
    assert_same(contracts.read_stimulus_ids(path), ids.astype(np.int64))
    with open_h5(path, "stimuli") as h5:
        dset = contracts.image_dataset(h5)
        assert dset.chunks == (1, 4, 5, 3)
        assert_same(dset[()], images)
    assert datasets(path) == {"images": (np.uint8, (3, 4, 5, 3)), "ids": (np.int64, (3,))}


def test_image_stimuli_refused(tmp_path):
    path = tmp_path / "stimuli.h5"
    with pytest.raises(ValueError, match="stimuli.h5: the image ids must be sorted and unique"):
        with contracts.create_image_stimuli(path, np.array([2, 1]), (4, 4, 3)):
            pass
    with pytest.raises(RuntimeError, match="boom"):  # a failed fill leaves no file
        with contracts.create_image_stimuli(path, np.array([1, 2]), (4, 4, 3)):
            raise RuntimeError("boom")
    assert not path.exists()
    with h5py.File(path, "w") as h5:
        h5["ids"] = np.array([1, 1])
        h5["images"] = np.zeros((2, 4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="stimuli.h5: 'ids' is empty or not sorted"):
        contracts.read_stimulus_ids(path)
    with h5py.File(path) as h5, pytest.raises(ValueError, match="stimuli.h5: 'images' is uint8"):
        contracts.image_dataset(h5)


def test_movie_stimuli_round_trip(tmp_path):
    path = tmp_path / "stimuli.h5"
    table = pd.DataFrame(
        {
            "movie": ["bourne01", "bourne01", "friends_s01e01a"],
            "tr": [1, 2, 1],
            "start_s": [0.49, 1.98, 0.49],
            "end_s": [2.98, 4.47, 2.98],
        }
    )
    codes = RNG.integers(0, 16, (3, 2, 4, 4)).astype(np.int64)
    contracts.write_movie_stimuli(path, table, codes, dict(tr=1.49, n_codes=16, frames=8))
    pd.testing.assert_frame_equal(contracts.read_tr_table(path), table)
    assert_same(contracts.read_stimulus_codes(path), codes.astype(np.int16))
    assert datasets(path)["movie"] == (np.dtype("S15"), (3,))
    with h5py.File(path) as h5:
        assert dict(h5.attrs) == dict(tr=1.49, n_codes=16, frames=8)
    with pytest.raises(ValueError, match="out.h5: 2 clips' codes for a table of 3 TR clips"):
        contracts.write_movie_stimuli(tmp_path / "out.h5", table, codes[:2], {})


# --- responses ---------------------------------------------------------------------------


def assert_same_responses(read: Responses, written: Responses) -> None:
    for name in ("train", "test"):
        a, b = getattr(read, name), getattr(written, name)
        for field in contracts.SPLIT_DATASETS:
            assert_same(getattr(a, field), getattr(b, field))
    for name in ("challenge_stimulus", "noise_ceiling", "ncsnr", *contracts.VOLUME):
        assert_same(getattr(read, name), getattr(written, name))
    for name in contracts.SURFACE:
        assert_same(getattr(read, name), getattr(written, name))
    assert sorted(read.rois) == sorted(written.rois)
    for key, mask in written.rois.items():
        assert_same(read.rois[key], mask)
    assert dict(read.attrs) == written.attrs


def test_volume_responses_round_trip(tmp_path):
    path = tmp_path / "subj01.h5"
    written = volume_responses()
    contracts.write_responses(path, written, provenance={"rule": "prepare_subject"})
    assert_same_responses(read_all_parts(path), written)
    assert datasets(path) == {
        **{
            f"{s}/{k}": (dtype, (n, *shape))
            for s, n in (("train", 5), ("test", 2))
            for k, dtype, shape in (
                ("responses", np.float32, (V,)),
                ("stimulus", np.int64, ()),
                ("n_repeats", np.int32, ()),
            )
        },
        "noise_ceiling": (np.float32, (V,)),
        "ncsnr": (np.float32, (V,)),
        "rois/streams/early": (bool, (V,)),
        "rois/streams/ventral": (bool, (V,)),
        "rois/floc-faces/FFA-1": (bool, (V,)),
        "voxel_ijk": (np.int32, (V, 3)),
        "mask": (bool, (3, 2, 2)),
        "affine": (np.float64, (4, 4)),
    }
    # only the parts asked for; the provenance attributes are not the file's own
    part = contracts.read_responses(path, ["noise_ceiling"], optional=["rois", "surface"])
    assert part.train is None and part.mask is None and part.hemisphere is None
    assert list(part.rois) == [
        ("floc-faces", "FFA-1"),
        ("streams", "early"),
        ("streams", "ventral"),
    ]
    assert_same(part.noise_ceiling, written.noise_ceiling)
    assert "encscale_rule" not in part.attrs and part.attrs["n_sessions"] == 5


def test_surface_and_movie_responses_round_trip(tmp_path):
    surface = Responses(
        train=split(4, n_repeats=np.full(4, 3, dtype=np.int32)),
        test=split(3, n_repeats=np.full(3, 3, dtype=np.int32)),
        challenge_stimulus=np.array([7, 2, 9], dtype=np.int64),
        noise_ceiling=np.full(V, np.nan, dtype=np.float32),
        ncsnr=np.full(V, np.nan, dtype=np.float32),
        rois={("streams", "early"): np.arange(V) < 3},
        hemisphere=np.array([0, 0, 0, 0, 1, 1], dtype=np.uint8),
        vertex=np.array([0, 1, 2, 3, 0, 1], dtype=np.int32),
        attrs=dict(subject="subj01", n_vertices_lh=4, n_vertices_rh=2, holdout=0.1),
    )
    contracts.write_responses(tmp_path / "surface.h5", surface)
    assert_same_responses(read_all_parts(tmp_path / "surface.h5"), surface)

    runs = np.array(["ses-001_task-s01e01a"] * 4 + ["ses-002_task-s01e02a"])
    movie = Responses(
        train=split(5, run=runs, tr=np.arange(2, 7, dtype=np.int64)),
        test=split(2, run=runs[:2], tr=np.arange(2, 4, dtype=np.int64)),
        noise_ceiling=np.full(V, np.nan, dtype=np.float32),
        attrs=dict(subject="sub-01", lag=2),
    )
    contracts.write_responses(tmp_path / "movie.h5", movie)
    read = read_all_parts(tmp_path / "movie.h5")
    assert_same_responses(read, movie)
    assert datasets(tmp_path / "movie.h5")["train/run"] == (np.dtype("S20"), (5,))
    assert read.rois == {} and read.ncsnr is None


def test_responses_refused_naming_the_file_and_key(tmp_path):
    path = tmp_path / "resp.h5"
    contracts.write_responses(path, volume_responses())
    with pytest.raises(KeyError, match="resp.h5: dataset 'challenge/stimulus' is missing"):
        contracts.read_responses(path, ["challenge"])
    with pytest.raises(KeyError, match="resp.h5: dataset 'hemisphere' is missing"):
        contracts.read_responses(path, ["surface"])
    with pytest.raises(KeyError, match="resp.h5: attribute 'lag' is missing"):
        contracts.read_responses(path).attrs["lag"]
    with pytest.raises(ValueError, match=r"unknown parts \['trian'\]"):
        contracts.read_responses(path, ["trian"])

    def broken(edit) -> str:
        bad = tmp_path / "bad.h5"
        bad.write_bytes(path.read_bytes())
        with h5py.File(bad, "a") as h5:
            edit(h5)
        return str(bad)

    def replace(key, value):
        def edit(h5):
            del h5[key]
            h5[key] = value

        return edit

    bad = broken(replace("test/stimulus", np.arange(3)))
    with pytest.raises(ValueError, match=r"bad.h5: dataset 'test/stimulus' has shape \(3,\): 3 "):
        contracts.read_responses(bad, ["test"])
    bad = broken(replace("noise_ceiling", np.zeros(V + 1, dtype=np.float32)))
    with pytest.raises(ValueError, match="bad.h5: dataset 'noise_ceiling' .*7 voxels.* has 6"):
        contracts.read_responses(bad, ["train", "noise_ceiling"])
    with pytest.raises(ValueError, match=r"bad.h5: dataset 'test/responses' has shape \(2,\)"):
        contracts.read_responses(broken(replace("test/responses", np.zeros(2))), ["test"])
    nan = volume_responses().train.responses
    nan[1, 2] = np.nan
    bad = broken(replace("train/responses", nan))
    with pytest.raises(ValueError, match="bad.h5: train/responses: 1 non-finite"):
        contracts.read_responses(bad, ["train"])
    with pytest.raises(ValueError, match="bad.h5: voxel_ijk .* in C order"):
        ijk = volume_responses().voxel_ijk[::-1]
        contracts.read_responses(broken(replace("voxel_ijk", ijk)), ["volume"])
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[:300])
    with pytest.raises(OSError, match="truncated.h5: cannot read responses file"):
        contracts.read_responses(truncated, ["train"])

    out = tmp_path / "out.h5"
    with pytest.raises(ValueError, match="out.h5: a responses file needs 'noise_ceiling'"):
        contracts.write_responses(out, Responses(train=split(2), test=split(2)))
    short = volume_responses()
    short.test.stimulus = short.test.stimulus[:1]
    with pytest.raises(ValueError, match="out.h5: dataset 'test/stimulus' has shape"):
        contracts.write_responses(out, short)
    no_affine = volume_responses()
    no_affine.affine = None
    with pytest.raises(ValueError, match=r"out.h5: \['voxel_ijk', 'mask'\] without the rest"):
        contracts.write_responses(out, no_affine)
    assert not out.exists()


# --- features ----------------------------------------------------------------------------

MAPS = [LayerMap("block00", 0.0, 0, 3, 5, 5), LayerMap("block03", 1.0, 3, 2, 2, 2)]
PREFIX = FeatureSet("block00", 0, 0.0, 6, 0, map_size=0)  # two prefix tokens of 3 channels


def map_file(path, dtype=np.float32, compression=None):
    """A features file of ``MAPS`` and ``PREFIX``, 6 stimuli: its values by key."""
    contracts.create_features(
        path, [PREFIX], 6, dtype, maps=MAPS, compression=compression, chunk_rows=4
    )
    values = {lm.key: RNG.normal(size=(6, lm.channels, lm.height, lm.width)) for lm in MAPS}
    values[PREFIX.key] = RNG.normal(size=(6, PREFIX.width))
    values = {key: x.astype(dtype) for key, x in values.items()}
    with contracts.update_features(path, ATTRS) as h5:
        for key, x in values.items():
            h5[key][:4] = x[:4]
            h5[key][4:] = x[4:]
    return values


@pytest.mark.parametrize("compression", [None, "gzip"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_layer_maps_filled_in_place_round_trip(tmp_path, dtype, compression):
    path = tmp_path / "features.h5"
    values = map_file(path, dtype, compression)
    assert [lm.key for lm in MAPS] == ["layers/block00/map", "layers/block03/map"]
    assert (MAPS[0].side, MAPS[0].attrs()) == (5, dict(layer_index=0, depth=0.0, map_size=5))
    assert contracts.feature_sets(path) == [PREFIX]  # the stored 2-D sets only
    assert datasets(path)["layers/block00/map"] == (np.dtype(dtype), (6, 3, 5, 5))
    with contracts.open_features(path) as features:
        assert (features.n_stimuli, features.maps, features.sets) == (6, MAPS, [PREFIX])
        dset = features.h5[MAPS[0].key]
        assert dict(dset.attrs) == MAPS[0].attrs()
        assert dset.chunks == (None if compression is None else (4, 3, 5, 5))
        for lm in MAPS:
            x = features.read_map(lm, np.arange(6))
            assert_same(x, values[lm.key].astype(np.float32))
        rows = np.array([5, 1, 5, 0, 3])  # unsorted, repeated
        x = features.read_map(MAPS[0], rows, channels=slice(1, 3))
        assert_same(x, values[MAPS[0].key][rows, 1:3].astype(np.float32))
        assert features.read_map(MAPS[1], np.array([], dtype=int)).shape == (0, 2, 2, 2)
        assert_same(features.read_rows(PREFIX, rows), values[PREFIX.key][rows].astype(np.float32))


def test_fit_sets_pool_the_maps_at_any_k(tmp_path):
    path = tmp_path / "features.h5"
    map_file(path)
    with contracts.open_features(path) as features:
        every = features.fit_sets("all")
        capped = features.fit_sets([8, 1, 4, 5, 2])  # 4, 5, 8 → 4, 5 on block00; 2 on block03
        with pytest.raises(ValueError, match="features.h5: the layers' maps are pooled at fit"):
            features.fit_sets(None)
        with pytest.raises(ValueError, match=r"features.h5: pool_sizes must be 'all' or"):
            features.fit_sets([0, 2])
        with pytest.raises(ValueError, match="features.h5: block00/k2 is pooled from the"):
            features.read_rows(every[2], np.arange(2))
    assert every[0] == PREFIX
    assert [(fs.name, fs.width) for fs in every[1:]] == [
        ("block00/k1", 3), ("block00/k2", 12), ("block00/k3", 27), ("block00/k4", 48),
        ("block00/k5", 75), ("block03/k1", 2), ("block03/k2", 8),
    ]  # fmt: skip
    assert all(fs.from_map and fs.key == f"layers/{fs.layer}/map" for fs in every[1:])
    assert {(fs.layer, fs.map_size, fs.depth, fs.layer_index) for fs in every[1:]} == {
        ("block00", 5, 0.0, 0),
        ("block03", 2, 1.0, 3),
    }
    assert every[-1] == FeatureSet("block03", 2, 1.0, 8, 3, map_size=2, from_map=True)
    assert [fs.name for fs in capped] == [
        "block00/k0", "block00/k1", "block00/k2", "block00/k4", "block00/k5",
        "block03/k1", "block03/k2",
    ]  # fmt: skip


def test_fit_sets_of_an_older_file_of_pooled_sets(tmp_path):
    path = tmp_path / "older.h5"
    contracts.create_features(path, SETS, 3, np.float32)
    with contracts.update_features(path, dict(ATTRS, pool_sizes=np.array([1, 2]))):
        pass
    with contracts.open_features(path) as features:
        assert features.maps == []
        assert features.fit_sets(None) == SETS
        assert features.fit_sets([2, 1]) == SETS  # block03's side is 1: k 1 only
        assert features.fit_sets([2]) == [SETS[0], SETS[2], SETS[3]]
        with pytest.raises(ValueError, match=r"asks for k \[1, 4\], without \[4\]; re-extract"):
            features.fit_sets([1, 8])  # capped at block00's side, 4
        with pytest.raises(
            ValueError,
            match=r"older.h5: layer 'block00' stores the pooled sets "
            r"k \[1, 2\] .* asks for k \[1, 2, 3, 4\], without \[3, 4\]; "
            r"re-extract .*delete .*older.h5, or .*--forcerun extract_features",
        ):
            features.fit_sets("all")


def test_fit_sets_of_a_file_without_maps_or_pool_sizes_are_its_sets(tmp_path):
    path = tmp_path / "gpt.h5"
    sets = [FeatureSet(f"h{i}", 1, i / 2, 3, i) for i in range(3)]
    values = [np.zeros((4, 3), np.float32) for _ in sets]
    contracts.write_features(
        path, list(zip(sets, values, strict=True)), dict(ATTRS, layers=["h0", "h1", "h2"])
    )
    with contracts.open_features(path) as features:
        assert features.fit_sets(None) == features.fit_sets([1, 2, 4]) == sets


def test_layer_maps_refused_naming_the_file(tmp_path):
    path = tmp_path / "features.h5"
    pooled = FeatureSet("block00", 2, 0.0, 12, 0, map_size=5, from_map=True)
    with pytest.raises(ValueError, match=r"features.h5: the sets \['block00/k2'\] are pooled"):
        contracts.create_features(path, [pooled], 6, np.float32, maps=MAPS)
    map_file(path)
    with h5py.File(path, "a") as h5:
        h5[MAPS[1].key][2, 0, 1, 1] = np.inf
    with contracts.open_features(path) as features:
        features.read_map(MAPS[1], np.array([0, 1]))
        with pytest.raises(ValueError, match="features.h5: /layers/block03/map: 1 non-finite"):
            features.read_map(MAPS[1], np.array([3, 2]))
    with h5py.File(path, "a") as h5:  # a truncated map
        del h5[MAPS[1].key]
        h5.create_dataset(MAPS[1].key, (5, 2, 2, 2), np.float32).attrs.update(MAPS[1].attrs())
    with pytest.raises(ValueError, match="features.h5: the feature sets' numbers of stimuli"):
        with contracts.open_features(path):
            pass
    with h5py.File(path, "a") as h5:
        del h5[MAPS[1].key]
        h5.create_dataset(MAPS[1].key, (6, 8), np.float32).attrs.update(MAPS[1].attrs())
    with pytest.raises(ValueError, match="features.h5: dataset '/layers/block03/map' has shape"):
        with contracts.open_features(path):
            pass
    with h5py.File(path, "a") as h5:  # a missing map
        del h5[MAPS[1].key]
        prefix = FeatureSet("block03", 0, 1.0, 4, 3, map_size=0)
        h5.create_dataset(prefix.key, (6, 4), np.float32).attrs.update(prefix.attrs())
    with pytest.raises(KeyError, match="features.h5: dataset 'layers/block03/map' is missing"):
        with contracts.open_features(path):
            pass


SETS = [
    FeatureSet("block00", 0, 0.0, 8, 0, map_size=0),
    FeatureSet("block00", 1, 0.0, 4, 0, map_size=4),
    FeatureSet("block00", 2, 0.0, 16, 0, map_size=4),
    FeatureSet("block03", 1, 1.0, 6, 3, map_size=1),
]
ATTRS = dict(model="tiny", n_params=1234, layers=["block00", "block03"], precision="fp32")


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_features_filled_in_place_round_trip(tmp_path, compression):
    path = tmp_path / "features.h5"
    contracts.create_features(path, SETS, 5, np.float16, compression=compression, chunk_rows=2)
    values = {fs.key: RNG.normal(size=(5, fs.width)).astype(np.float16) for fs in SETS}
    with contracts.update_features(path, ATTRS, provenance={"rule": "extract"}) as h5:
        for fs in SETS:
            h5[fs.key][:3] = values[fs.key][:3]
            h5[fs.key][3:] = values[fs.key][3:]
    assert [fs.key for fs in SETS] == [
        "layers/block00/prefix", "layers/block00/k1", "layers/block00/k2", "layers/block03/k1",
    ]  # fmt: skip
    assert contracts.feature_sets(path) == SETS
    with contracts.open_features(path) as features:
        assert (features.model, features.n_params, features.n_stimuli) == ("tiny", 1234, 5)
        assert features.sets == SETS
        rows = np.array([4, 0, 4])
        x = features.read_rows(SETS[2], rows)
        assert_same(x, values["layers/block00/k2"][rows].astype(np.float32))
        assert features.h5[SETS[2].key].attrs["map_size"] == 4
        assert features.h5[SETS[0].key].attrs["k"] == 0
        assert (features.h5[SETS[3].key].chunks is None) == (compression is None)
    assert SETS[2].name == "block00/k2" and SETS[0].name == "block00/k0"


def test_features_written_whole_round_trip(tmp_path):
    path = tmp_path / "gpt.h5"
    sets = [FeatureSet(f"h{i}", 1, i / 2, 3, i) for i in range(3)]
    values = [RNG.normal(size=(4, 3)).astype(np.float32) for _ in sets]
    contracts.write_features(
        path, list(zip(sets, values, strict=True)), dict(ATTRS, layers=["h0", "h1", "h2"])
    )
    assert contracts.feature_sets(path) == sets
    with contracts.open_features(path) as features:
        for fs, x in zip(sets, values, strict=True):
            assert_same(features.read_rows(fs, np.arange(4)), x)
        assert dict(features.h5[sets[1].key].attrs) == dict(layer_index=1, depth=0.5, k=1)


def test_features_refused_naming_the_file_and_key(tmp_path):
    path = tmp_path / "features.h5"
    with pytest.raises(ValueError, match=r"features.h5: a features file needs .*\['n_params'\]"):
        contracts.write_features(path, [], dict(model="m", layers=[]))
    with pytest.raises(ValueError, match=r"features.h5: layers/block00/k1 has shape \(4, 5\)"):
        contracts.write_features(path, [(SETS[1], np.zeros((4, 5)))], ATTRS)
    contracts.create_features(path, SETS, 3, np.float32)
    with contracts.update_features(path, ATTRS) as h5:
        h5[SETS[1].key][1, 2] = np.nan
    with contracts.open_features(path) as features:
        with pytest.raises(ValueError, match="features.h5: /layers/block00/k1: 1 non-finite"):
            features.read_rows(SETS[1], np.arange(3))
    with h5py.File(path, "a") as h5:
        del h5["layers/block00/k2"].attrs["depth"]
    with pytest.raises(KeyError, match="features.h5: /layers/block00/k2: attribute 'depth'"):
        contracts.feature_sets(path)
    with h5py.File(path, "a") as h5:
        h5["layers/block00/k2"].attrs["depth"] = 0.0
        del h5["layers/block03"]
    with pytest.raises(KeyError, match="features.h5: group 'layers/block03' is missing"):
        contracts.feature_sets(path)
    with h5py.File(path, "a") as h5:
        h5.create_dataset("layers/block03/k1", (2, 6), np.float32).attrs.update(SETS[3].attrs())
    with pytest.raises(ValueError, match="features.h5: the feature sets' numbers of stimuli"):
        with contracts.open_features(path):
            pass
    with pytest.raises(FileNotFoundError, match="nowhere.h5: features file is missing"):
        contracts.feature_sets(tmp_path / "nowhere.h5")


# --- fits --------------------------------------------------------------------------------


def full_fit() -> Fit:
    return Fit(
        best_set=np.array([0, 1, 1, 0, 2, 2], dtype=np.int16),
        feature_sets=np.array(["block00/k1", "block00/k2", "block03/k1"]),
        set_depth=np.array([0.0, 0.0, 1.0], dtype=np.float32),
        best_alpha=np.logspace(0, 5, V).astype(np.float32),
        cv_score=RNG.normal(size=V).astype(np.float32),
        set_scores=RNG.uniform(-1, 1, (3, V)).astype(np.float16),
        edge_gain=np.where(np.arange(V) < 2, RNG.uniform(0, 0.01, V), 0).astype(np.float32),
        train_rows=np.array([0, 2, 3, 5], dtype=np.int64),
        test_pred=RNG.normal(size=(2, V)).astype(np.float32),
        test_r=RNG.uniform(-1, 1, V).astype(np.float32),
        challenge_pred=RNG.normal(size=(3, V)).astype(np.float32),
        attrs=dict(subject="subj01", model="tiny", n_params=10, size=4, seed=0, scoring="r"),
    )


def test_fit_round_trip(tmp_path):
    path = tmp_path / "n4_s0.h5"
    written = full_fit()
    contracts.write_fit(path, written)
    read = contracts.read_fit(path, list(contracts.FIT))
    for key in contracts.FIT:
        assert_same(getattr(read, key), getattr(written, key))
    assert dict(read.attrs) == written.attrs
    assert datasets(path)["feature_sets"] == (np.dtype("S10"), (3,))
    assert datasets(path)["set_scores"] == (np.dtype("float16"), (3, V))
    # encoding.predictions needed: a fit without test_pred; asking for it names the file
    without = full_fit()
    without.test_pred = None
    contracts.write_fit(tmp_path / "n6_s0.h5", without)
    assert "test_pred" not in datasets(tmp_path / "n6_s0.h5")
    with pytest.raises(KeyError, match="n6_s0.h5: dataset .test_pred. is missing"):
        contracts.read_fit(tmp_path / "n6_s0.h5", ["test_pred"])
    # an ensemble: predictions and r only; the absent challenge_pred is optional
    ensemble = Fit(test_pred=written.test_pred, test_r=written.test_r, attrs=dict(model="e"))
    contracts.write_fit(tmp_path / "ensemble.h5", ensemble)
    read = contracts.read_fit(tmp_path / "ensemble.h5", ["test_pred"], optional=["challenge_pred"])
    assert_same(read.test_pred, written.test_pred)
    assert read.challenge_pred is None and read.test_r is None
    assert list(datasets(tmp_path / "ensemble.h5")) == ["test_pred", "test_r"]


def test_fit_refused_naming_the_file_and_key(tmp_path):
    path = tmp_path / "fit.h5"
    with pytest.raises(ValueError, match="fit.h5: a fit file needs test_r"):
        contracts.write_fit(path, Fit(test_pred=np.zeros((2, V), dtype=np.float32)))
    bad = full_fit()
    bad.test_r = bad.test_r[:-1]
    with pytest.raises(ValueError, match="fit.h5: dataset 'test_r' has shape .*5 voxels"):
        contracts.write_fit(path, bad)
    bad = full_fit()
    bad.test_pred[0, 0] = np.inf
    with pytest.raises(ValueError, match="fit.h5: test_pred: 1 non-finite"):
        contracts.write_fit(path, bad)
    assert not path.exists()
    contracts.write_fit(path, full_fit())
    with pytest.raises(ValueError, match=r"unknown datasets \['nope'\] of a fit file"):
        contracts.read_fit(path, ["nope"])
    with h5py.File(path, "a") as h5:
        h5["test_r"][2] = np.nan
        del h5["challenge_pred"]
    with pytest.raises(ValueError, match="fit.h5: test_r: 1 non-finite"):
        contracts.read_fit(path, ["test_r"])
    with pytest.raises(KeyError, match="fit.h5: dataset 'challenge_pred' is missing"):
        contracts.read_fit(path, ["challenge_pred"])
    with pytest.raises(KeyError, match="fit.h5: attribute 'members' is missing"):
        contracts.read_fit(path).attrs["members"]


def test_pool_grid_all_is_the_first_studys_k_1_to_16():
    assert contracts.pool_grid("all", 64) == list(range(1, 17))  # ConvNeXt's 64 × 64 stem map
    assert contracts.pool_grid("all", 14) == list(range(1, 15))
    assert contracts.pool_grid([1, 2, 4, 8, 16], 7) == [1, 2, 4, 7]
