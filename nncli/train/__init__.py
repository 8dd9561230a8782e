"""Training from configs: the config schema and loader, building objects, the trainer, run folders."""
