"""The backbone registry (torchvision's ``models/_api.py`` pattern): name -> model builder, allowed widths and block
table, the one source of block facts. A backbone is one file whose builder is decorated with ``register_backbone``."""

from ._common import Block
from .registry import Backbone, block_table, get_backbone, list_backbones, register_backbone
from . import mobilenet_v1, mobilenet_v2  # noqa: E402,I001  (importing a backbone's file registers it)

__all__ = ["Backbone", "Block", "block_table", "get_backbone", "list_backbones", "mobilenet_v1", "mobilenet_v2",
           "register_backbone"]
