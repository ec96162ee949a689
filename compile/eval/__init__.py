"""Accuracy: COCO / CrowdPose keypoint metrics of an artifact, and synthetic keypoint data."""
