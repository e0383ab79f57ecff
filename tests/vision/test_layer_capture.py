"""Layer capture: pooling, token maps, the choice of layers and of hooked submodules."""

import pytest
import torch

from encscale.vision.layers import match_modules, maxpool_tokens, select_layers, tokens_to_map


def test_maxpool_tokens_matches_manual_blocks():
    fmap = torch.randn(2, 3, 8, 8)
    pooled = maxpool_tokens(fmap, 2).reshape(2, 3, 2, 2)
    manual = fmap.reshape(2, 3, 2, 4, 2, 4).amax(dim=(3, 5))
    assert torch.equal(pooled, manual)
    # k above the map side is capped: a 2×2 map pooled "to 8" is the map itself
    small = torch.randn(1, 5, 2, 2)
    assert torch.equal(maxpool_tokens(small, 8), small.flatten(1))
    assert maxpool_tokens(fmap, 1).shape == (2, 3)


@pytest.mark.parametrize("k", [1, 3, 5, 7, 13])
def test_maxpool_tokens_in_blocks_of_images_equals_one_call(k):
    """Pooling a few images at a time (to bound torch's int64 indices) changes no value,
    also for k that do not divide the side; a k covering the map returns the map's values."""
    fmap = torch.randn(23, 4, 13, 13)
    whole = torch.nn.functional.adaptive_max_pool2d(fmap, k).flatten(1)
    blocks = maxpool_tokens(fmap, k, index_bytes=8 * 4 * k * k * 5)  # 5 images a block
    assert torch.equal(blocks, whole)
    full = maxpool_tokens(fmap, 13)
    assert full.data_ptr() == fmap.data_ptr() and torch.equal(full, fmap.flatten(1))


def test_tokens_to_map_splits_prefix_and_puts_patches_on_their_grid():
    tokens = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)  # 1 + 2×2 tokens
    fmap, prefix = tokens_to_map((tokens, "attention weights"), num_prefix=1)
    assert torch.equal(prefix, tokens[:, :1])
    assert fmap.shape == (2, 3, 2, 2)
    assert torch.equal(fmap[1, :, 0, 1], tokens[1, 2])  # patch (row 0, column 1): token 1 + 1
    same, _ = tokens_to_map(tokens.transpose(0, 1), num_prefix=1, layout="NBC")
    assert torch.equal(same, fmap)
    conv = torch.randn(2, 3, 4, 4)
    fmap, prefix = tokens_to_map(conv, num_prefix=0)
    assert fmap is conv and prefix is None
    with pytest.raises(ValueError, match="3 tokens after 2 prefix tokens do not form a square"):
        tokens_to_map(tokens, num_prefix=2)


def test_match_modules():
    names = ["", "enc", "enc.layers", "enc.layers.0", "enc.layers.0.fc", "enc.layers.11"]
    assert match_modules("enc.layers.*", names) == ["enc.layers.0", "enc.layers.11"]
    assert match_modules("enc", names) == ["enc"]
    assert match_modules("dec.*", names) == []


def test_select_layers():
    assert select_layers("all", 4) == [0, 1, 2, 3]
    assert select_layers([0, -1], 12) == [0, 11]
    assert select_layers({"stride": 4}, 12) == [3, 7, 11]
    with pytest.raises(ValueError, match="out of range"):
        select_layers([12], 12)


def test_timm_convnext_blocks_by_name_equal_the_blocks_outputs():
    """ConvNeXt's stem and every block (the first study's layers), named as submodules of a
    timm model: each map is that block's output, where forward_intermediates gives stages."""
    from encscale.cost import model_shape
    from encscale.torchtools import import_timm
    from encscale.vision.layers import LayerExtractor

    torch.manual_seed(0)
    model = import_timm().create_model("convnext_atto", pretrained=False, num_classes=0).eval()
    spec = {"timm": "convnext_atto", "layers": ["stem", "stages.*.blocks.*"]}
    extractor = LayerExtractor(model, spec, keep_prefix=False)
    depths = [len(stage.blocks) for stage in model.stages]
    assert extractor.n_layers == 1 + sum(depths) == 13
    assert extractor.names[:3] == ["stem", "stages.0.blocks.0", "stages.0.blocks.1"]
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        got = extractor(x)
        h = model.stem(x)
        expected = [h]
        for stage in model.stages:
            h = stage.downsample(h)
            for block in stage.blocks:
                h = block(h)
                expected.append(h)
        stages = model.forward_intermediates(x, output_fmt="NCHW", intermediates_only=True)
    assert len(got) == len(expected)
    for (fmap, prefix), want in zip(got, expected, strict=True):
        assert prefix is None and torch.equal(fmap, want)
    ends = [sum(depths[: i + 1]) for i in range(len(depths))]  # each stage's last block
    for i, end in enumerate(ends):
        torch.testing.assert_close(got[end][0], stages[i])
    extractor.close()
    assert not model.stem._forward_hooks
    shape = model_shape({**spec, "input_size": 64})
    assert [m for m in shape.maps] == [tuple(f.shape[1:]) for f, _ in got]
