"""Training, evaluation and calibration of echosearch's own CLIP models (and fine-tuning of pulled ones).

``train`` runs contrastive (frame, report) training and writes a model bundle; ``evaluate`` measures
retrieval and zero-shot quality on a labelled archive; ``calibrate`` writes F1-optimal thresholds.
"""
