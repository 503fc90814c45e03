"""Fit a backbone to a budget: pick from the zoo (``backbones pick``, :mod:`.pick`), compound-scale a
family (``backbones scale``, :mod:`vision_backbones.scaling`), shrink one with NetAdapt (``backbones
adapt``: :mod:`.netadapt` the loop, :mod:`.knobs` the config surgery, :mod:`.inherit` the weights,
:mod:`.calibrated_latency` the latency model, :mod:`.proxy_data` the proxy task, :mod:`.adapt_plot`
the chart). The command lines live in :mod:`vision_backbones.cli`."""
