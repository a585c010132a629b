"""The shared market layer every strategy reads: the exact state carried between batches (state.py), a batch's
versioned state log and what changed it (batch.py), reference prices (prices.py). It knows no strategy."""
