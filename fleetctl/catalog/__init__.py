"""The package catalog and what a package runs: package.yml files, compose templates,
image references, registry answers, and autotag's choice of image per host.

May import: facts (for the host an image must fit), state, the shared helpers.
"""
