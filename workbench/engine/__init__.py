"""The one training engine under everything (fit, resume, check trainings, LR finder, search trials,
label cross-validation, ensemble members, distillation) and what it runs on: the step log read in
batches, the background checkpoint writer, the session's job runner.
"""
