"""Built-in SMILES vocabulary (token strings only; no data is stored here).

The non-bracket tokens are the closed set the SMILES regex can produce. ``BRACKET_ATOMS`` is every
bracket token found in the MOSES train/test/test-scaffold sets, the MoleculeNet BBBP/ESOL/FreeSolv/
Tox21 and MoleculeACE CSVs, and RDKit's ``Data/NCI/first_5K.smi``, plus a hand-picked set of common
ChEMBL charged, chiral and metal atoms, sorted with ``sorted()``. ``V1_VOCAB`` is the vocabulary of
tokenizer format 1 (315 ids with the specials).

Format 2 appends ``PART_TOKENS``: the parts a bracket atom outside the vocabulary is split into
(``[``, element symbols, chirality classes, H counts, charges, ``]``; isotopes, atomic numbers and
atom classes are written with the digit tokens) and the ``%(`` of ``%(nnn)`` ring closures and the
``<-`` dative bond. Every SMILES RDKit parses is then covered without ``<unk>``.

Append-only: changing the order would renumber ids and invalidate trained models.
"""

ORGANIC_ATOMS: list[str] = ["B", "Br", "C", "Cl", "N", "O", "P", "S", "F", "I"]
AROMATIC_ATOMS: list[str] = ["b", "c", "n", "o", "p", "s"]
BONDS: list[str] = ["-", "=", "#", "$", ":", "/", "\\"]
SYNTAX: list[str] = ["(", ")", ".", "*", "+", "@", "@@", "~", ">"]
RING_CLOSURES: list[str] = [str(d) for d in range(10)] + [f"%{n}" for n in range(10, 100)]

BRACKET_ATOMS: list[str] = [
    "[11CH3]",
    "[11C]",
    "[123I]",
    "[125I]",
    "[18F]",
    "[2H]",
    "[3H]",
    "[Ag+]",
    "[Ag]",
    "[Al+3]",
    "[AlH3]",
    "[Al]",
    "[As]",
    "[Au-]",
    "[Au]",
    "[B-]",
    "[BH-]",
    "[BH2-]",
    "[BH3-]",
    "[B]",
    "[Ba+2]",
    "[Ba]",
    "[Be+2]",
    "[Be]",
    "[Bi]",
    "[Br-]",
    "[C-]",
    "[C@@H]",
    "[C@@]",
    "[C@H]",
    "[C@]",
    "[CH-]",
    "[CH2-]",
    "[CH2]",
    "[CH]",
    "[C]",
    "[Ca++]",
    "[Ca+2]",
    "[Ca]",
    "[Cd+2]",
    "[Cd]",
    "[Ce]",
    "[Cl+3]",
    "[Cl-]",
    "[Cl]",
    "[Co++]",
    "[Co+2]",
    "[Co+3]",
    "[Co+]",
    "[Co]",
    "[Cr+2]",
    "[Cr+3]",
    "[Cr]",
    "[Cs+]",
    "[Cu++]",
    "[Cu+2]",
    "[Cu+]",
    "[Cu]",
    "[Dy]",
    "[F-]",
    "[Fe++]",
    "[Fe+2]",
    "[Fe+3]",
    "[Fe-2]",
    "[Fe-]",
    "[Fe]",
    "[Gd+3]",
    "[Gd]",
    "[Ge]",
    "[H+]",
    "[H-]",
    "[H]",
    "[Hg+2]",
    "[Hg]",
    "[I+]",
    "[I-]",
    "[I]",
    "[In]",
    "[Ir]",
    "[K+]",
    "[K]",
    "[Li+]",
    "[Li]",
    "[Mg+2]",
    "[Mg]",
    "[Mn++]",
    "[Mn+2]",
    "[Mn+3]",
    "[Mn+]",
    "[Mn]",
    "[Mo]",
    "[N+]",
    "[N-]",
    "[N@+]",
    "[N@@+]",
    "[N@@]",
    "[N@]",
    "[NH+]",
    "[NH-]",
    "[NH2+]",
    "[NH2]",
    "[NH3+]",
    "[NH4+]",
    "[NH]",
    "[N]",
    "[Na+]",
    "[Na]",
    "[Nd]",
    "[Ni++]",
    "[Ni+2]",
    "[Ni]",
    "[O+]",
    "[O-]",
    "[OH+]",
    "[OH-]",
    "[O]",
    "[Os]",
    "[P+]",
    "[P@@]",
    "[P@]",
    "[PH]",
    "[P]",
    "[PbH2+2]",
    "[Pd+2]",
    "[Pd]",
    "[Pt+2]",
    "[Pt]",
    "[Rb+]",
    "[Rh]",
    "[Ru]",
    "[S+2]",
    "[S+]",
    "[S-]",
    "[S@+]",
    "[S@@+]",
    "[S@@]",
    "[S@]",
    "[SH+]",
    "[SH]",
    "[S]",
    "[Sb-3]",
    "[SbH6+3]",
    "[Sb]",
    "[Se-]",
    "[SeH]",
    "[Se]",
    "[Si@@]",
    "[Si@]",
    "[SiH2]",
    "[SiH3]",
    "[SiH]",
    "[Si]",
    "[SnH2+2]",
    "[Sn]",
    "[Sr+2]",
    "[Tc]",
    "[Te]",
    "[Th]",
    "[Ti+2]",
    "[Ti]",
    "[TlH2+]",
    "[V]",
    "[Yb]",
    "[Zn++]",
    "[Zn+2]",
    "[Zn]",
    "[Zr]",
    "[c-]",
    "[cH-]",
    "[n+]",
    "[n-]",
    "[nH+]",
    "[nH]",
    "[o+]",
    "[s+]",
    "[se]",
    "[te]",
]

V1_VOCAB: list[str] = ORGANIC_ATOMS + AROMATIC_ATOMS + BONDS + SYNTAX + RING_CLOSURES + BRACKET_ATOMS

# Element symbols in atomic-number order, then the placeholder names of unnamed elements RDKit reads.
ELEMENTS: list[str] = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm "
    "Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No "
    "Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og Uun Uuu Uub Uut Uuq Uup Uuh Uus Uuo"
).split()
# Aromatic symbols allowed in brackets (RDKit: OpenSMILES' b c n o p s as se, plus si and te).
AROMATIC_SYMBOLS: list[str] = ["b", "c", "n", "o", "p", "s", "as", "se", "si", "te"]
CHIRALITY: list[str] = (
    ["@", "@@", "@TH1", "@TH2", "@AL1", "@AL2"]
    + [f"@SP{i}" for i in range(1, 4)]
    + [f"@TB{i}" for i in range(1, 21)]
    + [f"@OH{i}" for i in range(1, 31)]
    + ["@TH", "@AL", "@SP", "@TB", "@OH"]  # RDKit also reads a class without its number
)
# Longer H counts and charges are written "H" / sign followed by digit tokens.
H_COUNTS: list[str] = ["H"] + [f"H{d}" for d in range(10)]
CHARGES: list[str] = ["+", "-", "++", "--"] + [f"+{d}" for d in range(10)] + [f"-{d}" for d in range(10)]

# dict.fromkeys: "H" is both an element and an H count.
_PARTS = ["[", "]", *ELEMENTS, *AROMATIC_SYMBOLS, *CHIRALITY, *H_COUNTS, *CHARGES, "%(", "<-"]
PART_TOKENS: list[str] = [t for t in dict.fromkeys(_PARTS) if t not in V1_VOCAB]

DEFAULT_VOCAB: list[str] = V1_VOCAB + PART_TOKENS
