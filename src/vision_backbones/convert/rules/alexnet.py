"""torchvision AlexNet keys -> ours.

torchvision's ``features`` is one flat ``nn.Sequential``: convs at indices 0, 3, 6, 8, 10 (ReLUs and
pools in between); its ``classifier`` holds the linears at 1, 4, 6 (dropouts at 0 and 3).
"""

from __future__ import annotations

from vision_backbones.convert.reference import Reference, register_references

RULES: tuple[tuple[str, str], ...] = (
    (r"features\.0\.(weight|bias)", r"stages.0.conv.\1"),
    (r"features\.3\.(weight|bias)", r"stages.1.1.conv.\1"),
    (r"features\.6\.(weight|bias)", r"stages.2.1.conv.\1"),
    (r"features\.8\.(weight|bias)", r"stages.2.2.conv.\1"),
    (r"features\.10\.(weight|bias)", r"stages.2.3.conv.\1"),
    (r"classifier\.1\.(weight|bias)", r"head.fc1.\1"),
    (r"classifier\.4\.(weight|bias)", r"head.fc2.\1"),
    (r"classifier\.6\.(weight|bias)", r"head.fc.\1"),
)

register_references([Reference("torchvision", "alexnet", "alexnet", RULES)])
