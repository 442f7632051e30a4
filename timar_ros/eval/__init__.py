"""Evaluation: the DualTalk metrics (``metrics``), the progressive-context protocol through the
streaming policy (``progressive``), bag evaluation of the deployed pipeline (``bag_eval``) and
the tables they print (``tables``). Submodules are imported on use."""
