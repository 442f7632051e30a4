"""The main job, `make demo` / `timar demo`: the whole ROS 2 pipeline on a two-speaker
conversation (``pipeline``), then the summary, plots and a render from its bag (``report``)."""
