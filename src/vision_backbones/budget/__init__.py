"""Fit a backbone to a budget: pick from the zoo (``backbones pick``), compound-scale a family
(``backbones scale``, :mod:`vision_backbones.scaling`), shrink one with NetAdapt (``backbones adapt``)."""
