"""``grpokit explore``: a local web page over run folders.

- ``server``: the standard-library HTTP server, its JSON API and ``main(argv)`` (the CLI command);
- ``runs``: the run folders it was given, read safely and shaped for the page;
- ``scaling``: the advantage scalings Try it switches between (group std / none / RLOO);
- ``backends``: the ``TryBackend`` protocol and ``LocalTryBackend`` (sampling from checkpoints);
- ``static/``: the page (vanilla JS and SVG; no build step, nothing loaded from the network).

See docs/explorer.md.
"""
