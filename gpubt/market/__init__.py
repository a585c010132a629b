"""The shared market layer every strategy reads: the exact state carried between batches (state.py), a batch's
versioned state log and what changed it (batch.py), reference prices (prices.py), the pools our trades forked
(fork.py) and the searcher population who competes for MEV (searchers.py). It knows no strategy."""
