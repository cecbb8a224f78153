"""The EEG side of the face + EEG baseline on SEED-IV: EEGEncoder, leave-one-subject-out (or session-held-out) folds,
WA / UAR (see --help; the logic is `memobert.baselines.seed_iv`).

    python baselines/seed_iv.py --data_dir data/SEED_IV --output_dir outputs/seed-iv             # LOSO, DE features
    python baselines/seed_iv.py --data_dir data/SEED_IV/eeg_feature_smooth --folds session --eeg_encoder cnn

Reads the SEED-IV feature release (eeg_feature_smooth/<session>/<subject>_<date>.mat, arrays de_movingAve1..24 of
(62, windows, 5)); writes OUTPUT_DIR/results.md, results.json and predictions.csv.
"""

from memobert.baselines.seed_iv import main

if __name__ == "__main__":
    main()
