"""Neural architecture search over the registered families: spaces, strategies, evaluators (models never import it).

The modules, lowest layer first:

- ``spaces``: search spaces as data over a registered model's config; architectures as JSON files.
- ``rng``: random-generator states as plain data (what ``torch.load(weights_only=True)`` reads).
- ``strategy``: the one interface every strategy implements (and ``SharedWeights`` for weight sharing).
- ``random_search``, ``evolution``, ``controller`` (REINFORCE), ``oneshot``: the strategies;
  ``strategies``: their table and ``make_strategy``.
- ``supernet`` (the weight-sharing network), ``supernet_training`` (resumable training, path scores).
- ``data`` (``image_data``: your class folder or shards), ``evaluate``, ``latency``, ``objectives``:
  proxy data and training, latency, rewards.
- ``runner``: a resumable search in a folder, one process or Ray; ``result``: what a finished search
  writes (Pareto plot, best architecture, retrained comparison); ``table``: NAS-Bench-style tables;
  ``ranking``: rank agreement (Kendall tau).

The command line is ``vision_backbones.cli.search`` (``backbones search``).
"""
