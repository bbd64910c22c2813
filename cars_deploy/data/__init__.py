"""Datasets and the train/validation split used by search and retraining."""
from .datasets import DATASETS, DatasetInfo, dataset_info, load_dataset, split_train_val

__all__ = ["DATASETS", "DatasetInfo", "dataset_info", "load_dataset", "split_train_val"]
