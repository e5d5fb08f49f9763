"""LightningModules, one per task; each wraps a plain ``nn.Module`` given to it ready-made."""

from kbaselines.tasks.recognition import RecognitionTask

__all__ = ["RecognitionTask"]
