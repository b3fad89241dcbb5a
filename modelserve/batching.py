"""Token sequences of different lengths as one padded batch (scoring and training share it)."""

import torch


def pad(ids: list[list[int]], types: list[list[int]] | None, pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids``, ``token_type_ids`` and ``attention_mask`` (on the CPU), padded to the longest
    sequence; missing token types are 0."""
    width = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    token_types = torch.zeros((len(ids), width), dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, sequence in enumerate(ids):
        input_ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        if types is not None and types[row]:
            token_types[row, : len(types[row])] = torch.tensor(types[row], dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return {"input_ids": input_ids, "token_type_ids": token_types, "attention_mask": mask}
