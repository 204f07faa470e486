"""Every GPU graph is defined here without a GPU; definition errors and misplaced inputs are caught."""
import numpy as np

from apt_video.pipeline.graphcheck import check_gpu_graphs, gpu_graphs


def test_every_gpu_graph_defines_with_inputs_where_they_belong():
    results = check_gpu_graphs()
    names = [name for name, _ in results]
    assert len(names) == 5 and "test views" in names and "train, whole RandAugment suite on the frame" in names
    assert [(name, problem) for name, problem in results if problem] == []


def _planted():
    from nvidia.dali import fn, pipeline_def

    @pipeline_def(batch_size=2, num_threads=1, device_id=0)
    def named_args_from_gpu():  # AutoContrast's old form: GPU statistics as fn.normalize's mean
        x = fn.external_source(source=lambda: [np.zeros((2, 8, 8, 3), np.uint8)] * 2, layout="FHWC").gpu()
        lo = fn.reductions.min(x, axes=[1, 2], keep_dims=True)
        return fn.normalize(x, mean=lo, stddev=1.0, axes=[1, 2])

    @pipeline_def(batch_size=2, num_threads=1, device_id=0)
    def anchor_on_gpu():  # a numpy anchor next to GPU data becomes a GPU constant
        x = fn.external_source(source=lambda: [np.zeros((2, 8, 8, 3), np.uint8)] * 2, layout="FHWC").gpu()
        return fn.slice(x, np.array([1, 1], np.float32), np.array([4, 4], np.float32), axes=[1, 2])

    return [("named", named_args_from_gpu), ("anchor", anchor_on_gpu)]


def test_planted_defects_are_reported():
    results = dict(check_gpu_graphs(_planted()))
    assert "Named arguments must be on CPU" in results["named"]
    assert "Slice" in results["anchor"] and "input 1 is on the GPU" in results["anchor"]
    assert len(gpu_graphs()) == 5
