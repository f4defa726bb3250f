"""Benchmark builders on tiny fixtures written in each real layout (names, extensions, label encodings)."""

import json

import datasets
import numpy as np
import pytest
import torch
from datasets.distributed import split_dataset_by_node
from PIL import Image

from datasets_scripts import BENCHMARKS, benchmark_kind, load_benchmark


HEIGHT, WIDTH = 32, 64


def _write(path, array, format=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=format)
    return path


def _image(path, seed=0):
    array = np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return _write(path, array)


def _label(path, values):
    """A label whose rows cycle through `values` (so every value is present)."""
    array = np.array(values, dtype=np.uint8)[np.arange(HEIGHT) % len(values)][:, None].repeat(WIDTH, axis=1)
    return _write(path, array)


def _labels_of(dataset):
    return {example["id"]: None if example["label"] is None else np.asarray(example["label"]) for example in dataset}


def _values(label):
    return set(np.unique(label).tolist())


def _cityscapes(root, split_folder="val", cities=("aachen", "bochum"), per_city=2, train_ids=False):
    for city in cities:
        for frame in range(per_city):
            base = f"{city}_000000_{frame:06d}"
            _image(root / "leftImg8bit" / split_folder / city / f"{base}_leftImg8bit.png", seed=frame)
            _label(root / "gtFine" / split_folder / city / f"{base}_gtFine_labelIds.png", [7, 8, 26, 0, 255, 33, 3])
            if train_ids:
                _label(root / "gtFine" / split_folder / city / f"{base}_gtFine_labelTrainIds.png", [0, 13, 255])
    return root


def test_registry_names_and_kinds():
    assert set(BENCHMARKS) == {
        "cityscapes", "cityscapes_ood", "fishyscapes_lf", "fishyscapes_static", "smiyc_anomaly",
        "smiyc_obstacle", "road_anomaly", "lost_and_found", "synthetic",
    }  # fmt: skip
    assert benchmark_kind("cityscapes") == benchmark_kind("cityscapes_ood") == "semantic"
    for name in ("fishyscapes_lf", "fishyscapes_static", "smiyc_anomaly", "smiyc_obstacle", "road_anomaly"):
        assert benchmark_kind(name) == "ood"
    assert benchmark_kind("lost_and_found") == "ood" and BENCHMARKS["lost_and_found"].default_split == "testNoKnown"


def test_cityscapes_label_ids_are_remapped_to_train_ids(tmp_path):
    dataset = load_benchmark("cityscapes", _cityscapes(tmp_path), split="validation")
    assert isinstance(dataset, datasets.IterableDataset) and dataset.num_shards == 4
    examples = list(dataset)
    assert [example["id"] for example in examples] == [
        "aachen_000000_000000", "aachen_000000_000001", "bochum_000000_000000", "bochum_000000_000001",
    ]  # fmt: skip
    label = np.asarray(examples[0]["label"])
    np.testing.assert_array_equal(label[:7, 0], [0, 1, 13, 255, 255, 18, 255])
    assert examples[0]["image"].size == (WIDTH, HEIGHT) and examples[0]["dataset"] == "cityscapes"


def test_cityscapes_prefers_label_train_ids_unless_told(tmp_path):
    root = _cityscapes(tmp_path, split_folder="train", cities=("jena",), per_city=1, train_ids=True)
    (label,) = _labels_of(load_benchmark("cityscapes", root, split="train")).values()
    assert _values(label) == {0, 13, 255}
    (label,) = _labels_of(load_benchmark("cityscapes", root, split="train", label_type="label_ids")).values()
    assert _values(label) == {0, 1, 13, 18, 255}


def test_cityscapes_ood_maps_object_ids_to_19(tmp_path):
    for name in ("a", "b"):
        _image(tmp_path / "leftImg8bit/train/aachen" / f"{name}.png")
        _label(tmp_path / "gtFine/train/aachen" / f"{name}.png", [0, 18, 19, 45, 90, 255])
    _image(tmp_path / "leftImg8bit/train/bonn/bonn_000001_000019_leftImg8bit.png")
    _label(tmp_path / "gtFine/train/bonn/bonn_000001_000019_gtFine_labelTrainIds.png", [2, 77])
    labels = _labels_of(load_benchmark("cityscapes_ood", tmp_path, split="train"))
    assert sorted(labels) == ["aachen/a", "aachen/b", "bonn/bonn_000001_000019_leftImg8bit"]
    np.testing.assert_array_equal(labels["aachen/a"][:6, 0], [0, 18, 19, 19, 19, 255])
    assert _values(labels["bonn/bonn_000001_000019_leftImg8bit"]) == {2, 19}


def _anomaly_track(base):
    for fid in ("validation0000", "validation0001", "validation0002", "airplane0000", "zebra0001"):
        _image(base / "images" / f"{fid}.jpg")
        if fid.startswith("validation"):
            _label(base / "labels_masks" / f"{fid}_labels_semantic.png", [0, 1, 255])


def test_smiyc_anomaly_validation_and_unlabelled_test(tmp_path):
    _anomaly_track(tmp_path / "dataset_AnomalyTrack")
    labels = _labels_of(load_benchmark("smiyc_anomaly", tmp_path))
    assert sorted(labels) == ["validation0000", "validation0001", "validation0002"]
    assert all(_values(label) == {0, 1, 255} for label in labels.values())
    test = _labels_of(load_benchmark("smiyc_anomaly", tmp_path / "dataset_AnomalyTrack", split="test"))
    assert test == {"airplane0000": None, "zebra0001": None}


def test_smiyc_obstacle_split_rules_and_validation_exclusions(tmp_path):
    base = tmp_path / "dataset_ObstacleTrack"
    fids = ["validation_1", "validation_20", "validation_19", "validation_25", "validation_3",
            "curvy-street_1", "gravel_2", "driveway_1", "snowstorm1_4", "snowstorm2_1"]  # fmt: skip
    for fid in fids:
        _write(base / "images" / f"{fid}.webp", np.full((HEIGHT, WIDTH, 3), 90, dtype=np.uint8), format="WEBP")
        if fid.startswith("validation"):
            _label(base / "labels_masks" / f"{fid}_labels_semantic.png", [0, 1, 255])
    ids = {split: sorted(_labels_of(load_benchmark("smiyc_obstacle", tmp_path, split=split))) for split in
           ("validation", "test", "night", "snowstorm")}  # fmt: skip
    assert ids == {
        "validation": ["validation_1", "validation_20", "validation_3"],
        "test": ["curvy-street_1", "gravel_2"],
        "night": ["driveway_1"],
        "snowstorm": ["snowstorm1_4", "snowstorm2_1"],
    }


def test_mask2anomaly_bundle_layouts(tmp_path):
    for folder, extension in (("RoadAnomaly21", "png"), ("RoadObsticle21", "webp"), ("FS_LostFound_full", "png"),
                              ("fs_static", "jpg"), ("RoadAnomaly", "jpg")):  # fmt: skip
        for fid in ("validation_1", "validation_21"):
            _image(tmp_path / folder / "images" / f"{fid}.{extension}")
            _label(tmp_path / folder / "labels_masks" / f"{fid}.png", [0, 1, 2, 255] if folder == "RoadAnomaly" else [0, 1, 255])
    expected = {"smiyc_anomaly": 2, "smiyc_obstacle": 1, "fishyscapes_lf": 2, "fishyscapes_static": 2, "road_anomaly": 2}
    for name, count in expected.items():
        labels = _labels_of(load_benchmark(name, tmp_path, layout="m2a"))
        assert len(labels) == count, name
        assert all(_values(label) == {0, 1, 255} for label in labels.values()), name


def test_fishyscapes_lost_and_found_layouts(tmp_path):
    fids = ["04_Maurener_Weg_8_000000_000030", "12_Umberto_Nobile_Str_000001_000180"]
    laf = tmp_path / "LostAndFound"
    for index, fid in enumerate(fids):
        _image(laf / "leftImg8bit" / ("test" if index else "train") / fid.rsplit("_", 2)[0] / f"{fid}_leftImg8bit.png")
        _label(tmp_path / "fishy" / "labels/val" / f"{fid}_fishy-labels.png", [0, 1, 255])
        _image(tmp_path / "rba/Fishyscapes/laf_images" / f"{fid}_leftImg8bit.png")
        _label(tmp_path / "rba/Fishyscapes/fishyscapes_lostandfound" / f"{index:04d}_{fid}_labels.png", [0, 1, 255])
    smiyc = _labels_of(load_benchmark("fishyscapes_lf", tmp_path / "fishy", images_root=laf))
    assert sorted(smiyc) == fids
    rba = _labels_of(load_benchmark("fishyscapes_lf", tmp_path / "rba"))
    assert sorted(rba) == [f"{index:04d}_{fid}_labels" for index, fid in enumerate(fids)]
    with pytest.raises(FileNotFoundError, match="12_Umberto_Nobile_Str_000001_000180_leftImg8bit.png"):
        (laf / "leftImg8bit/test/12_Umberto_Nobile_Str/12_Umberto_Nobile_Str_000001_000180_leftImg8bit.png").unlink()
        load_benchmark("fishyscapes_lf", tmp_path / "fishy", images_root=laf)


def test_fishyscapes_static_versions(tmp_path):
    for version in (1, 2):
        for index in range(version + 1):
            _image(tmp_path / "Fishyscapes" / f"fs_static_images_v{version}" / f"{index}_rgb.png")
            _label(tmp_path / "Fishyscapes" / f"fs_val_v{version}" / f"{index}_labels.png", [0, 1, 255])
    with pytest.raises(ValueError, match="pass version="):
        load_benchmark("fishyscapes_static", tmp_path)
    assert sorted(_labels_of(load_benchmark("fishyscapes_static", tmp_path, version="2"))) == ["0", "1", "2"]


def test_road_anomaly_maps_2_to_1(tmp_path):
    base = tmp_path / "RoadAnomaly_jpg"
    for name in ("animals01_Guiness_family", "cones02_Kilkenny"):
        _image(base / "frames" / f"{name}.jpg")
        _label(base / "frames" / f"{name}.labels" / "labels_semantic.png", [0, 2])
    (base / "frame_list.json").write_text(json.dumps(["cones02_Kilkenny.jpg"]))
    labels = _labels_of(load_benchmark("road_anomaly", tmp_path))
    assert list(labels) == ["cones02_Kilkenny"] and _values(labels["cones02_Kilkenny"]) == {0, 1}
    (base / "frame_list.json").unlink()
    assert len(_labels_of(load_benchmark("road_anomaly", base))) == 2


def test_lost_and_found_remapping_and_test_no_known(tmp_path):
    frames = {
        "02_Hanns_Klemm_Str_44_000000_000100": [0, 1, 5, 200],
        "02_Hanns_Klemm_Str_44_000001_000100": [0],  # nothing labelled: SMIYC drops it from testNoKnown
        "01_Hanns_Klemm_Str_45_000006_000120": [1, 2],  # bicycle scene
        "15_Rechbergstr_Deckenpfronn_000000_000050": [1, 3],  # children
    }
    for fid, values in frames.items():
        scene = fid.rsplit("_", 2)[0]
        _image(tmp_path / "leftImg8bit/test" / scene / f"{fid}_leftImg8bit.png")
        _label(tmp_path / "gtCoarse/test" / scene / f"{fid}_gtCoarse_labelIds.png", values)
    test = _labels_of(load_benchmark("lost_and_found", tmp_path, split="test"))
    assert len(test) == 4
    np.testing.assert_array_equal(test["02_Hanns_Klemm_Str_44_000000_000100"][:4, 0], [255, 0, 1, 1])
    assert list(_labels_of(load_benchmark("lost_and_found", tmp_path))) == ["02_Hanns_Klemm_Str_44_000000_000100"]


def _ids(batch):
    return batch["id"]


def test_two_workers_and_two_nodes_read_every_file_once(tmp_path):
    dataset = load_benchmark("cityscapes", _cityscapes(tmp_path, per_city=3))
    expected = sorted(example["id"] for example in dataset)
    assert len(expected) == 6
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2, collate_fn=_ids)
    assert sorted(loader) == expected
    per_node = [[example["id"] for example in split_dataset_by_node(dataset, rank, 2)] for rank in range(2)]
    assert len(per_node[0]) == len(per_node[1]) == 3
    assert sorted(per_node[0] + per_node[1]) == expected


def test_not_streaming_gives_a_dataset(tmp_path):
    dataset = load_benchmark("cityscapes", _cityscapes(tmp_path / "cs"), streaming=False, cache_dir=tmp_path / "cache")
    assert isinstance(dataset, datasets.Dataset) and len(dataset) == 4
    assert _values(np.asarray(dataset[0]["label"])) == {0, 1, 13, 18, 255}


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="Root folder of benchmark 'cityscapes' not found: .*nowhere"):
        load_benchmark("cityscapes", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="pass root="):
        load_benchmark("road_anomaly")


def test_no_images_names_the_searched_patterns(tmp_path):
    (tmp_path / "leftImg8bit").mkdir()
    with pytest.raises(FileNotFoundError, match=r"searched .*leftImg8bit/val/\*/\*_leftImg8bit.png"):
        load_benchmark("cityscapes", tmp_path)
    with pytest.raises(FileNotFoundError, match="No known layout of benchmark 'road_anomaly'.*frame_list|RoadAnomaly_jpg"):
        load_benchmark("road_anomaly", tmp_path)


def test_image_without_label_is_named(tmp_path):
    root = _cityscapes(tmp_path)
    (root / "gtFine/val/bochum/bochum_000000_000001_gtFine_labelIds.png").unlink()
    with pytest.raises(FileNotFoundError, match="bochum_000000_000001_leftImg8bit.png has no label"):
        load_benchmark("cityscapes", root)


def test_label_values_not_allowed_name_file_and_values(tmp_path):
    _anomaly_track(tmp_path)
    _label(tmp_path / "labels_masks/validation0001_labels_semantic.png", [0, 1, 7, 200])
    dataset = load_benchmark("smiyc_anomaly", tmp_path)
    with pytest.raises(ValueError, match=r"validation0001_labels_semantic.png has values \[7, 200\]"):
        list(dataset)


def test_size_mismatch_and_unreadable_files_fail_at_load_time(tmp_path):
    root = _cityscapes(tmp_path)
    label = root / "gtFine/val/aachen/aachen_000000_000001_gtFine_labelIds.png"
    _write(label, np.zeros((HEIGHT, WIDTH + 1), dtype=np.uint8))
    with pytest.raises(ValueError, match="aachen_000000_000001_gtFine_labelIds.png is 65x32 but its image"):
        load_benchmark("cityscapes", root)
    label.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="Cannot read label file .*aachen_000000_000001_gtFine_labelIds.png"):
        load_benchmark("cityscapes", root)


def test_multichannel_label_is_rejected(tmp_path):
    root = _cityscapes(tmp_path, cities=("ulm",), per_city=1)
    _write(root / "gtFine/val/ulm/ulm_000000_000000_gtFine_labelIds.png", np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="image mode RGB; expected a single-channel label"):
        list(load_benchmark("cityscapes", root))


def test_layout_choice_errors(tmp_path):
    _anomaly_track(tmp_path / "dataset_AnomalyTrack")
    _anomaly_track(tmp_path / "RoadAnomaly21")
    with pytest.raises(ValueError, match=r"Several layouts .*\['smiyc', 'm2a'\].*layout="):
        load_benchmark("smiyc_anomaly", tmp_path)
    with pytest.raises(ValueError, match="Unknown layout 'rba'"):
        load_benchmark("smiyc_anomaly", tmp_path, layout="rba")
    with pytest.raises(ValueError, match="no split 'train'"):
        load_benchmark("smiyc_anomaly", tmp_path, split="train")


def _cutouts(folder):
    rgba = np.zeros((20, 10, 4), dtype=np.uint8)
    rgba[..., :3] = (250, 0, 250)
    rgba[2:18, 2:8, 3] = 255
    _write(folder / "cone.png", rgba)
    _write(folder / "crate.png", np.full((12, 16, 3), (0, 250, 250), dtype=np.uint8))
    mask = np.zeros((12, 16), dtype=np.uint8)
    mask[3:12, 1:15] = 255
    _write(folder / "crate_mask.png", mask)
    return folder


def _scene():
    from datasets_scripts.synthetic import generate_scene

    return generate_scene(0, "validation", 64, 128)


def test_paster_from_folder_is_deterministic_and_labels_19(tmp_path):
    from datasets_scripts.pasting import OODObjectPaster

    paster = OODObjectPaster.from_folder(_cutouts(tmp_path), probability=1.0, max_objects=3, scale_range=(0.2, 0.4))
    assert len(paster.objects) == 2
    image, label = _scene()
    label[label == 19] = 0
    pasted_image, pasted_label = paster(image, label, index=3)
    again = paster(image, label, index=3)
    np.testing.assert_array_equal(pasted_image, again[0])
    np.testing.assert_array_equal(pasted_label, again[1])
    changed = (pasted_image != image).any(axis=-1) | (pasted_label != label)
    assert (pasted_label == 19).sum() > 20
    assert (pasted_label[changed] == 19).all()
    assert set(map(tuple, pasted_image[pasted_label == 19].tolist())) <= {(250, 0, 250), (0, 250, 250)}
    others = [paster(image, label, index=index)[1] for index in range(4, 8)]
    assert any(not np.array_equal(other, pasted_label) for other in others)
    assert not (label == 19).any()  # inputs untouched


def test_paster_probability_and_road_preference(tmp_path):
    from datasets_scripts.pasting import OODObjectPaster

    image = np.zeros((64, 128, 3), dtype=np.uint8)
    label = np.full((64, 128), 10, dtype=np.uint8)
    label[48:] = 0  # road only in the bottom quarter
    never = OODObjectPaster.from_folder(_cutouts(tmp_path), probability=0.0)
    assert not (never(image, label, 0)[1] == 19).any()
    on_road = OODObjectPaster.from_folder(tmp_path, probability=1.0, scale_range=(0.05, 0.1), road_preference=1.0)
    for index in range(6):
        rows = np.nonzero(on_road(image, label, index)[1] == 19)[0]
        assert rows.size and rows.max() >= 48


def test_paster_from_coco_leaves_out_cityscapes_classes(tmp_path):
    from datasets_scripts.pasting import OODObjectPaster

    _write(tmp_path / "images/000001.jpg", np.full((60, 60, 3), (255, 128, 0), dtype=np.uint8))
    square = [[10.0, 10.0, 50.0, 10.0, 50.0, 50.0, 10.0, 50.0]]
    coco = {
        "images": [{"id": 1, "file_name": "000001.jpg", "height": 60, "width": 60}],
        "categories": [{"id": 1, "name": "person"}, {"id": 38, "name": "kite"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": square, "area": 1600.0, "bbox": [10, 10, 40, 40], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 38, "segmentation": square, "area": 1600.0, "bbox": [10, 10, 40, 40], "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 38, "segmentation": square, "area": 50.0, "bbox": [10, 10, 40, 40], "iscrowd": 0},
        ],
    }  # fmt: skip
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    paster = OODObjectPaster.from_coco(tmp_path / "instances.json", tmp_path / "images", probability=1.0)
    assert len(paster.objects) == 1
    everything = OODObjectPaster.from_coco(tmp_path / "instances.json", tmp_path / "images", exclude_cityscapes=False)
    assert len(everything.objects) == 2
    image, label = _scene()
    pasted_image, pasted_label = paster(image, label, 0)
    colours = pasted_image[(pasted_label == 19) & (label != 19)]
    assert len(colours) and np.abs(colours.astype(int) - (255, 128, 0)).max() <= 8  # JPEG
    with pytest.raises(FileNotFoundError, match="COCO annotation file not found"):
        OODObjectPaster.from_coco(tmp_path / "missing.json", tmp_path / "images")


def test_paster_bad_inputs(tmp_path):
    from datasets_scripts.pasting import OODObjectPaster

    with pytest.raises(FileNotFoundError, match="Cut-out folder not found"):
        OODObjectPaster.from_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"No cut-out images found; searched .*\*.png"):
        OODObjectPaster.from_folder(tmp_path / "empty")
    _write(tmp_path / "flat/rock.jpg", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="rock.jpg has no alpha channel and no mask rock_mask.png"):
        OODObjectPaster.from_folder(tmp_path / "flat")
    cut_out = (np.zeros((4, 4, 3), dtype=np.uint8), np.ones((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="scale_range"):
        OODObjectPaster([cut_out], scale_range=(0.5, 0.2))
    with pytest.raises(ValueError, match="at least one object"):
        OODObjectPaster([])
    empty = OODObjectPaster([(cut_out[0], np.zeros((4, 4), dtype=bool))], probability=1.0)
    with pytest.raises(ValueError, match="empty mask"):
        empty(np.zeros((16, 16, 3), dtype=np.uint8), np.zeros((16, 16), dtype=np.uint8), 0)


def test_cli_inspect_prints_counts_and_writes_overlays(tmp_path, capsys):
    from datasets_scripts.cli import main

    root = _cityscapes(tmp_path / "cs")
    main(["inspect", "cityscapes", str(root), "--output-dir", str(tmp_path / "out"), "--max-images", "3", "--num-overlays", "2"])
    printed = capsys.readouterr().out
    assert "cityscapes (validation): 3 examples, 0 without label" in printed
    assert f"{WIDTH}x{HEIGHT} x3" in printed
    assert "| 13 |" in printed and "| 255 |" in printed and "| 19 |" not in printed
    overlays = sorted((tmp_path / "out").iterdir())
    assert [path.suffix for path in overlays] == [".png", ".png"]
    with Image.open(overlays[0]) as overlay:  # image | ground truth panel
        assert overlay.mode == "RGB" and overlay.width > 2 * overlay.height


def test_cli_inspect_synthetic_options_and_errors(tmp_path, capsys):
    from datasets_scripts.cli import main

    main(["inspect", "synthetic", "--split", "anomaly", "--option", "num_examples=2", "--option", "height=32", "--option", "width=64"])
    assert "synthetic (anomaly): 2 examples" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", "road_anomaly", str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    assert "Root folder of benchmark 'road_anomaly' not found" in capsys.readouterr().err


def test_fishyscapes_original_and_labels_layout(tmp_path):
    for folder, extension in (("LostAndFound", "png"), ("fs_static", "jpg")):
        for stem in ("0000", "0001"):
            _image(tmp_path / folder / "original" / f"{stem}.{extension}")
            _label(tmp_path / folder / "labels" / f"{stem}.png", [0, 1, 255])
    for name in ("fishyscapes_lf", "fishyscapes_static"):
        labels = _labels_of(load_benchmark(name, tmp_path))
        assert sorted(labels) == ["0000", "0001"], name
        assert all(_values(label) == {0, 1, 255} for label in labels.values())
    (tmp_path / "LostAndFound/original/0001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"0001.png has no image: expected .*LostAndFound/original/0001"):
        load_benchmark("fishyscapes_lf", tmp_path / "LostAndFound")


def test_truncated_image_is_named_when_read_and_by_the_cli(tmp_path, capsys):
    from datasets_scripts.cli import main

    base = tmp_path / "RoadAnomaly_jpg"
    for name in ("animals01", "cones02"):
        _image(base / "frames" / f"{name}.png")
        _label(base / "frames" / f"{name}.labels" / "labels_semantic.png", [0, 2])
    frame = base / "frames" / "cones02.png"
    frame.write_bytes(frame.read_bytes()[:-40])  # the end of the PNG is missing
    with pytest.raises(ValueError, match=r"Cannot read image file .*cones02.png: .*expected a complete image file"):
        list(load_benchmark("road_anomaly", tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", "road_anomaly", str(tmp_path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "cones02.png" in error and "expected a complete image file" in error and "Traceback" not in error
    _write(frame.with_suffix(".jpg"), np.zeros((HEIGHT, WIDTH, 3), np.uint8), format="JPEG")
    frame.with_suffix(".jpg").write_bytes(frame.with_suffix(".jpg").read_bytes()[:-20])  # a truncated JPEG
    frame.unlink()
    with pytest.raises(ValueError, match=r"Cannot read image file .*cones02.jpg: image file is truncated.*expected a"):
        list(load_benchmark("road_anomaly", tmp_path))


def test_jpeg_label_with_a_png_name_is_refused(tmp_path):
    base = tmp_path / "RoadAnomaly_jpg"
    _image(base / "frames" / "animals01.jpg")
    label = base / "frames" / "animals01.labels" / "labels_semantic.png"
    _write(label, np.array([0, 2], np.uint8)[np.arange(HEIGHT) % 2][:, None].repeat(WIDTH, axis=1), format="JPEG")
    with pytest.raises(ValueError, match=r"Label .*labels_semantic.png is stored as JPEG.*expected a lossless label"):
        load_benchmark("road_anomaly", tmp_path)
