"""Speech: audio -> words (faster-whisper) -> speaker turns -> segments."""
