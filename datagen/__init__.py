"""Build (prompt, response) pairs for training: generate them with Gemini, or import existing sets.

Stage 1 (`stage_prompts`) asks Gemini for batches of user prompts in five categories; stage 2
(`stage_responses`) has Gemini answer each one. `importers` load pairs that already exist; `export` writes
the train/dev JSONL files that training reads. Everything lives in DuckDB tables declared in `tables`.
"""
