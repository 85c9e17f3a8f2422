"""Classification: text -> stage and talk/action; training, artifacts, model cards, evaluation."""
