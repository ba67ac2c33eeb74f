"""biolm's input and output layer: every file biolm reads or writes goes through it.

    files      opening (gzip by content, BOMs, UTF-16), atomic file and directory writes, the cache root
    columns    the one column picker of every table reader
    tables     CSV/TSV rows with their line numbers
    fasta      streaming FASTA records (also A3M and aligned FASTA)
    genome     indexed random access to large FASTA files (pyfaidx, BGZF)
    proteins   protein records and families from FASTA / A3M / Stockholm files and directories
    msa        alignments as match-column matrices (site-independent model, contexts)
    smiles     SMILES files and tables, RDKit canonical forms
    labelled   labelled tables for fine-tuning and evaluation
    dms        deep mutational scans and mutation strings
    records    the inputs of `biolm embed`: any supported file as (id, header, sequence)

It imports nothing from the rest of biolm but `biolm.errors`: readers know files and records, not
tokenizers or models. Errors name the file and, where there is one, the record or line.
"""
