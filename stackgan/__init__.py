"""stackgan: text-to-image StackGAN for invented Japanese dish names."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # lazy, so that `import stackgan` (and `stackgan --help`) stays free of torch
    if name in ("StackGANPipeline", "StackGANPipelineOutput"):
        from stackgan import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'stackgan' has no attribute {name!r}")
