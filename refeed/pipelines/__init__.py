"""End-to-end jobs composed of the layers below (models, tasks, train, eval): pretrain, demo.

Only ``refeed.cli`` imports this package.
"""
