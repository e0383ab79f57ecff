"""Toy image models of the vision tests: registry entries of timm architectures at toy size
and a plugin model (``factory``) whose tokens carry a class token."""

import time

import torch

CONVNEXT = {  # four stages of maps 8, 4, 2, 1 pixels wide at input 32
    "timm": "convnext_atto",
    "kwargs": {"dims": [8, 16, 24, 32], "depths": [1, 1, 1, 1], "ls_init_value": 1.0},
    "seed": 3,
    "input_size": 32,
}
EVA = {  # the EVA-02 architecture at toy size: 4×4 patches of 14 px, one class token
    "timm": "eva02_tiny_patch14_224",
    "kwargs": {"img_size": 56, "depth": 3, "embed_dim": 48, "num_heads": 2},
    "seed": 1,
}


class TinyTokenNet(torch.nn.Module):
    """A conv stem (B, 8, 4, 4), then a class token and a token mixer over (B, 1 + 16, 8)."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.stem = torch.nn.Conv2d(3, 8, kernel_size=8, stride=8)
        self.cls = torch.nn.Parameter(torch.randn(1, 1, 8))
        self.mixer = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.delay:
            time.sleep(self.delay)
        fmap = self.stem(x)
        tokens = torch.cat((self.cls.expand(len(x), -1, -1), fmap.flatten(2).transpose(1, 2)), 1)
        return self.mixer(tokens).mean(1)


def tiny_token_net(delay: float = 0.0) -> TinyTokenNet:
    return TinyTokenNet(delay)


PLUGIN = {  # importable where this folder is on sys.path
    "factory": "tiny_models:tiny_token_net",
    "layers": ["stem", "mix*"],
    "input_size": 32,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
    "num_prefix_tokens": 1,
}
