"""One module per family: the key-mapping rules from torchvision/timm checkpoints to ours, as data.

Each module registers its ``Reference`` entries on import (``convert.reference.list_references``
imports them all); none of them builds a model.
"""
