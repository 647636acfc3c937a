"""Shape collections: fit one tri-plane field per shape into a dataset, then classify the shapes
from their tri-planes (Cardace et al., ICLR 2024)."""
