//! Placeholder: the state directory's files (written in the next step).
