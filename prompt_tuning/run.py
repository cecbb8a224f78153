"""Emotion classification with MEmoBERT on speaker-independent folds (same as `memobert downstream`; see --help).

    python prompt_tuning/run.py --config prompt_tuning/configs/demo.yaml --setting prompt      # the demo corpus
    python prompt_tuning/run.py --config prompt_tuning/configs/demo.yaml --setting finetune --train_fraction 0.1
    accelerate launch prompt_tuning/run.py --config prompt_tuning/configs/iemocap.yaml \\
        --corpus corpora/iemocap --pretrained_model outputs/pretrain --setting prompt     # the paper's recipe

Settings: direct (no init), bert_direct (text BERT init), finetune (pretrained + new head), prompt (pretrained,
label word at [MASK]). Model selection and early stopping use validation UAR only; the selected model is tested in
the modality cases L, V, A, LV, LA, VA, LVA. Options come from the dataclass defaults (the paper's hyperparameters),
then `--config FILE.yaml|json`, then the command line. Outputs: OUTPUT_DIR/<run_name>/{runs/*.json, predictions.csv,
confusion_LVA.png} and OUTPUT_DIR/results.md over every run in OUTPUT_DIR.
"""

from memobert.cli import downstream_main

if __name__ == "__main__":
    downstream_main()
