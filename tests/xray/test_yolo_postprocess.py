"""Post-processing: threshold, class-wise NMS, cap, 1-based labels."""

import torch

from kbaselines.xray.yolo.postprocess import select_detections


def test_nms_is_class_wise_and_labels_are_one_based():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.5, 0.0, 10.5, 10.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([[0.9, 0.0], [0.8, 0.7], [0.0005, 0.3]])
    out = select_detections(boxes, scores, score_thresh=0.001, nms_thresh=0.5)
    # point 1 class 0 overlaps point 0 class 0 (IoU 0.9): suppressed; its class 1 survives
    assert out["labels"].tolist() == [1, 2, 2]
    torch.testing.assert_close(out["scores"], torch.tensor([0.9, 0.7, 0.3]))
    torch.testing.assert_close(out["boxes"], boxes[[0, 1, 2]])


def test_score_threshold_and_detection_cap():
    boxes = torch.tensor([[float(10 * i), 0.0, float(10 * i + 5), 5.0] for i in range(5)])
    scores = torch.tensor([[0.1], [0.5], [0.3], [0.05], [0.4]])
    out = select_detections(boxes, scores, score_thresh=0.2, detections_per_img=2)
    torch.testing.assert_close(out["scores"], torch.tensor([0.5, 0.4]))
    assert out["labels"].tolist() == [1, 1]


def test_no_candidate_gives_empty_tensors():
    out = select_detections(torch.zeros(3, 4), torch.zeros(3, 2), score_thresh=0.5)
    assert (
        out["boxes"].shape == (0, 4) and out["scores"].shape == (0,) and out["labels"].shape == (0,)
    )
