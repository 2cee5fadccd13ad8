"""How every tuned constant was chosen: the default strategy and its head, and the evaluation's estimators.

A decision record, kept apart from the benchmarks' code so that both read in an afternoon. Each
entry names a constant, its value, and the development runs that chose it: the seeds (never the
reported ones), the protocol, the rule written before the runs, and the numbers. Candidates tried
and not kept are entries too. The label-efficiency and evaluation reports copy these entries
into their JSON and .md, and the README shows them; `tests/unit/test_choices.py` holds the
recorded values to the code's defaults.
"""

from __future__ import annotations

# The default's and its head's hyperparameters, and how each was chosen. Every choice was made on
# development runs only: seeds 1000-1009 (the report uses 0-19), scored on a held-out 25% of the
# pool (--evaluate-on validation; the test split unused), a 200-label budget, all tasks and starts.
# "dev nALC" = median over tasks of the median normalised area on those runs.
TUNING = "seeds 1000+, --evaluate-on validation, budget 200, every task and start"
LABEL_EFFICIENCY: tuple[dict, ...] = (
    {"parameter": "selection.uniform_share", "value": 0.1,
     "how": f"0.1 against 0.2 ({TUNING}): dev nALC +0.16 against +0.10 (6 seeds); at least one pick per batch. "
            "Rechecked 2026-12-01 with today's strategy on seeds 1000-1019 (all settings; rule written first: a new "
            "value needs no more settings below 0 and a mean >= 0.01 higher, then the same on fresh seeds): 0.05 / "
            "0.1 / 0.2: mean +0.301 / +0.301 / +0.289, below 0: 4 / 4 / 5 (0.05 differs only at b25: one pick per "
            "batch of 10 either way): kept"},
    {"parameter": "selection.positive_balance", "value": 0.3,
     "how": "0.5 against 0.3 and 0.7 (same runs): dev nALC +0.16 against +0.12 and +0.11. Rechecked 2026-12-01 "
            "(same runs and rule as uniform_share): 0.3 / 0.5 / 0.7: mean +0.305 / +0.301 / +0.287, median +0.285 / "
            "+0.273 / +0.224, below 0: 4 / 4 / 4; 0.3's gain is under the rule's 0.01: kept. 0.3 since 2026-12-05: "
            "why: with a prompt or an example, `uncertainty` led the default by 0.05 or more on spam @5% and shirts "
            "@natural and @1%, where the difference is the top picks made while positives are under half the "
            "ratings. Rule written before the runs (today's 0.5 against 0.3 and 0.4): seeds 1000-1019 (validation, "
            "budget 500), the 43 tuned + 10 development settings, no more settings below 0, a mean at least 0.005 "
            "higher, no prompt floor newly under 95%, of the passing the higher mean; then the same on fresh seeds "
            "3000-3019; not adopted if the held-out concepts then get more settings below 0 or a mean lower by more "
            "than 0.005 (the reported seeds). Seeds 1000-1019, 0.5 / 0.3 / 0.4: mean +0.367 / +0.372 / +0.369, below 0 "
            "2 / 2 / 1 (0.3: Shirt @natural b10 example +0.26 -> +0.32, spam @5% b10 prompt +0.47 -> +0.52, fork list "
            "@natural cold +0.03 -> +0.09; spam @1% noisy cold +0.27 -> +0.20): 0.3 passes, 0.4 does not (mean). "
            "Seeds 3000-3019: mean +0.357 -> +0.365, below 0 2 -> 1 (Shirt @5% b10 example +0.40 -> +0.44, fork "
            "list @natural cold +0.09 -> +0.15; Shirt @natural noisy example +0.19 -> +0.13), worst prompt floor "
            "0.80 -> 0.80 (spamassassin-talk @natural prompt, a development concept): passes. Held-out concepts "
            "(seeds 0-19, test): mean +0.308 -> +0.315, median +0.381 -> +0.407, below 0 2 -> 2 (RPM @natural cold "
            "-0.57 -> -0.55, footwear example -0.35 -> -0.35): adopted. 2026-12-05, 0.2 against 0.3 (the trend "
            "continued?), same rule plus no prompt floor falling by more than 0.10, seeds 1000-1019 on the 43 + 10 "
            "settings against the stored arm of 0.3 (random identical in 53 of 53): below 0 2 -> 2, mean +0.3720 -> "
            "+0.3726, median +0.358 -> +0.358; 45 of 53 settings moved by under 0.005 (positives rarely make "
            "between a fifth and 30% of the ratings while top picks still matter): fails the mean, not kept, no "
            "fresh-seed run"},
    {"parameter": "selection.clusters", "value": 100,
     "how": "30 / 60 / 100 / 150 clusters: dev nALC +0.14 / +0.13 / +0.18 / +0.13 (8 seeds); clusters used only "
            "while the head has no signal: +0.24 against +0.19 when they also spread the boundary picks (10 seeds). "
            "Rechecked 2026-12-01 (same runs and rule as uniform_share): 60 / 100 / 150: mean +0.282 / +0.301 / "
            "+0.294, below 0: 5 / 4 / 5: kept"},
    {"parameter": "selection.prevalence_gain", "value": 1.0,
     "how": "seeds 1000-1019, same protocol, dev nALC median / mean / settings below 0: none (base) +0.16 / +0.19 / 11; "
            "gain 1 from the first rating (0.5 until a uniform pick is rated: half of the batch after a single "
            "example is random) +0.19 / +0.24 / 8; from before any rating +0.14 / +0.22 / 8; from the first rated "
            "uniform pick +0.14 / +0.20 / 11. Gain 1 / 2 / 3 on seeds 1000-1009: +0.21 / +0.23 / +0.21 median, "
            "+0.25 / +0.20 / +0.20 mean, 7 / 7 / 8 below 0: 1 kept. Rechecked 2026-12-01 with today's strategy (seeds "
            "1000-1019, all settings; a new value needs no more settings below 0 and a mean >= 0.01 higher): 0.5 / 1 / "
            "2: mean +0.289 / +0.301 / +0.238, below 0: 9 / 4 / 7: kept"},
    {"parameter": "head.l2", "value": 0.3,
     "how": "0.03 / 0.1 / 0.3 / 1 / 3: mean dev area 0.628 / 0.641 / 0.639 / 0.620 / 0.596, dev nALC +0.13 / +0.20 / "
            "+0.19 / +0.18 / +0.08 (6 seeds); 0.3, the larger of the two best, for the prompt floor. Rechecked "
            "2026-12-01 (same runs and rule as uniform_share; the full-pool probe uses the same l2): 0.1 / 0.3 / 1: "
            "mean +0.293 / +0.301 / +0.292, below 0: 4 / 4 / 3. 1 has one setting fewer below 0 but a lower mean, "
            "and the rule asked for both: kept"},
    {"parameter": "head.prior_l2", "value": 1.0,
     "how": "kept: 0.1 and 10 moved the mean dev area by +0.006 and -0.010"},
    {"parameter": "head.prompt_role", "value": "example",
     "how": "seeds 1000-1019, same protocol, the 15 spam settings (image tasks have no prompt), dev nALC median / "
            "mean / settings below 0: 'prior' (the prompt's score as a feature W starts from) +0.16 / +0.18 / 3; "
            "'example' (weight 1) +0.32 / +0.34 / 2; both at once (weight 5) +0.21 / +0.19 / 3; 'prior' with "
            "prior_l2 0.01 +0.21 / +0.21 / 3; 'example' with the issue's background floor of 40 +0.10 / +0.19 / 4. "
            "Worst prompt-floor setting (spam 1% noisy, share of seeds never below zero-shot): 'prior' 0.50, "
            "'example' 0.65; every other prompt setting >= 0.90 with both"},
    {"parameter": "head.prompt_weight", "value": 30.0,
     "how": "1 / 3 / 5 / 10 / 20 / 40 (same runs): dev nALC mean +0.337 / +0.356 / +0.349 / +0.349 / +0.344 / +0.332 "
            "(median +0.317 for all); worst prompt-floor setting (spam 1% noisy) 0.65 / 0.80 / 0.85 / 0.90 / 0.95 / "
            "1.00: the smallest weight that meets goal 4 (>= 95% of seeds) on every dev prompt setting. (5 was "
            "adopted first, for the mean; the full run then missed goal 4 at 80%, and the rule was made explicit.) "
            "Rechecked 2026-12-01 with today's strategy and at the reported budget of 500 labels (the first check "
            "stopped at 200, and the reported run missed goal 4 at 85%), same rule, on both seed sets 1000-1019 and "
            "3000-3019: worst prompt floor 20: 1.00 / 0.85; 30: 0.95 / 0.95; 40: 1.00 / 0.90; mean nALC over the "
            "prompt settings +0.512 / +0.523, +0.505 / +0.499, +0.496 / +0.503. 30 is the smallest that meets it on "
            "both; the floors are not monotone in the weight (one or two seeds in 20), so this is seed noise as much "
            "as a trend"},
    {"parameter": "head.background_min_weight", "value": 2.0,
     "how": "kept: a floor of 10 or 40 (the issue's reference weight) lowered the mean dev area to 0.615 and 0.608 "
            "(from 0.620) and the dev nALC to +0.16 and +0.13 (from +0.18)"},
    {"parameter": "head.background_weight", "value": 0.1,
     "how": "rechecked 2026-12-01 with today's strategy (same runs and rule as prevalence_gain): 0.05 / 0.1 / 0.2: "
            "mean +0.294 / +0.301 / +0.300, below 0: 5 / 4 / 4: kept"},
    {"parameter": "adaptive strategy: a prompt's first batch", "value": "all boundary (since 2026-12-01)",
     "how": "first runs, seeds 1000-1019, same protocol, the 15 spam settings (only prompt starts differ): the first "
            "batch's non-uniform picks all from the top / half top, half boundary / all boundary: spam @natural b10 "
            "-0.04 / +0.05 / +0.30, b25 +0.14 / +0.06 / +0.26, but spam @5% b10 +0.61 / +0.49 / +0.49; mean +0.344 / "
            "+0.316 / +0.333, settings below 0: 2 / 1 / 1. All top was kept then, by the mean. The full run then put "
            "spam @natural with a prompt below random, which goal 1 (never below random) forbids; so the rule was "
            "restated with goal 1 first (fewest settings below 0, then the mean; the prompt floor must not get worse) "
            "and decided on fresh development seeds 2000-2019: all top / all boundary, settings below 0 4 / 3, mean "
            "+0.288 / +0.288, median +0.184 / +0.309 (spam @natural b10 -0.17 / +0.31, b25 +0.10 / +0.26; spam @5% "
            "b10 +0.62 / +0.51; spam @1% noisy b10 +0.57 / +0.41), prompt floor met on every setting by both. All "
            "boundary kept: the first batch of an example start goes there too (its positive rating ends the "
            "deficit)"},
    {"parameter": "selection.stale_after", "value": 40,
     "how": "added 2026-12-01 (the head's own picks go back to the clusters once this many of their latest ratings "
            "hold no positive). Rule written before the runs: choose among 10 / 20 / 40 on seeds 1000-1019 (same "
            "protocol, all 43 settings) by fewest settings below 0, then the mean; adopt only if fresh seeds "
            "3000-3019 show no more settings below 0, a mean at most 0.01 lower and no prompt floor newly below 95%. "
            "Seeds 1000-1019, off / 10 / 20 / 40: dev nALC median +0.265 / +0.273 / +0.265 / +0.265, mean +0.295 / "
            "+0.289 / +0.298 / +0.301, settings below 0: 5 / 7 / 8 / 4 (Trouser+Bag @1% example +0.07 -> +0.28 / "
            "+0.23 / +0.16; Shirt @1% b25 example +0.05 -> -0.15 / -0.05 / +0.10). Seeds 3000-3019, off / 40: "
            "median +0.274 / +0.269, mean +0.307 / +0.310, below 0: 2 / 1 (Trouser+Bag @1% example -0.05 -> +0.10), "
            "prompt floor unchanged (lowest: spam @1% noisy, 0.90 both): 40 adopted. The full runs then showed the "
            "cost of sending all of those picks to the clusters: in the evaluation benchmark spam @1% needed a median "
            "1160 labels to find 90% of its positives (415 before), the head's top no longer getting picks. A second "
            "rule, written before its runs: send half (rounded up) if it has no more dev settings below 0 and a mean at "
            "most 0.01 lower, finds 90% of spam @1%'s positives sooner and Trouser+Bag's at most 1.25x later "
            "(evaluation dev seeds 1000-1005). All / half: seeds 1000-1019 below 0 4 / 4, mean +0.301 / +0.303; seeds "
            "3000-3019 below 0 1 / 1, mean +0.310 / +0.310, median +0.269 / +0.274 (Trouser+Bag @1% example +0.10 / "
            "+0.03), prompt floor 0.90 / 0.90; median labels to 90% of the positives spam @1% 1535 / 630, Trouser+Bag "
            "@1% 165 / 185, Shirt @5% 1380 / 1170, spam @5% 350 / 350: half adopted"},
    {"parameter": "adaptive strategy: cluster order once positives are scarce",
     "value": "the most isolated tenth first, the rest in random order (since 2026-12-02; most isolated first 2026-12-01)",
     "how": "why: the truth-knowing reference (`--strategies adaptive,oracle`, seeds 1000-1019) showed the gap in rare "
            "cold starts (+0.10 against +0.93); offline on seeds 1000-1009, visiting the least-rated clusters most "
            "isolated centroid first (1 - the largest cosine to another centroid) cut the expected picks to a first "
            "positive from 40 to 1 on Bag @1% and 37 to 1 on Trouser+Bag @1% (shirts and spam @1%: unchanged, 83-97). "
            "Rule written before each run: seeds 1000-1019 (validation, budget 200, all settings, adaptive vs random) "
            "no more settings below 0 than today (4) and a mean at least 0.01 higher (today +0.301), then fresh seeds "
            "no more below 0 and a mean not lower, and no prompt floor newly under 95%. Isolated first in every cluster "
            "pick: below 0 6, mean +0.311 (Bag @1% cold +0.39 -> +0.96, but Bag @natural cold -0.13 -> -0.83, tops "
            "cold +0.22 -> -0.02: isolated clusters are a poor first training set for a common concept): not kept. "
            "Every other cluster pick isolated: below 0 7, mean +0.318: not kept. Isolated first only once ratings "
            "exist (after a rated batch with no positive, and in the stale phase; the first batch keeps random "
            "order): below 0 4, mean +0.322 (Bag @1% cold +0.80, Trouser+Bag @1% cold +0.17 -> +0.44, example +0.11 "
            "-> +0.26; Shirt @natural cold -0.01 -> -0.10, spam @1% cold +0.21 -> +0.07); fresh seeds 8000-8019: "
            "below 0 10 -> 7, mean +0.262 -> +0.293, prompt floor 95% both: adopted. Its cost on the held-out concepts "
            "(RPM mail @6% cold -0.28 -> -0.75) led to three softenings, same rule plus the mean over the 8 cold settings "
            "at 5-10% at least 0.03 higher (today +0.147): isolated and random order alternating once ratings exist: "
            "below 0 5, mean +0.315, 5-10% cold +0.154; isolated only after 20 ratings without a positive: below 0 6, "
            "mean +0.306, 5-10% cold +0.150 (Bag @1% cold +0.80 -> +0.57); only the most isolated tenth of the "
            "clusters first, the rest in random order: below 0 4, mean +0.320, 5-10% cold +0.149 (the rare gains "
            "kept, but the dev seeds show no cost to recover): none kept (2026-12-01). 2026-12-02: the development "
            "concepts (`--task-set development`: every concept no run had used, three mailing lists at 3-19%, "
            "T-shirts, trousers; added because the held-out RPM result showed a cost the tuned concepts could not; "
            "so the held-out numbers since are no clean test of this choice) judged the three again under a rule "
            "written first: seeds 1000-1019 on the 43 + 10 settings, a candidate qualifies with no more settings "
            "below 0 than today (6), a mean at least today's - 0.005 (+0.311) and a mean over the 5 new cold "
            "settings at least 0.03 higher (today +0.150); then fresh seeds 9100-9119, no more below 0 and a mean "
            "at least today's - 0.005; no prompt floor newly under 95%. Alternating: 6 / +0.311 / +0.206; after 20: "
            "7 / +0.297 / +0.143; the most isolated tenth first: 5 / +0.313 / +0.192 (spamassassin-talk @2.8% cold "
            "-0.04 -> +0.17), chosen; fresh seeds: below 0 8 -> 7, mean +0.243 -> +0.247, worst prompt floor 0.90 "
            "both: adopted. 2026-12-04, alternating tried once more (the held-out RPM mail @6% cold still -0.57: "
            "its median run holds no positive after 20 labels, random's one): every other pick of a batch without "
            "signal from the most isolated tenth, the rest in random order (the stale phase unchanged). Rule written "
            "first: the 22 cold settings of the 43 + 10 (no other start reaches that phase), seeds 1000-1019, no "
            "more below 0, a mean at least today's - 0.005 and one of the two better; then the same on fresh seeds "
            "3000-3019. Seeds 1000-1019: below 0 6 -> 5, mean +0.179 -> +0.176 (spam @1% cold -0.03 -> +0.14, "
            "spam+exmh @1% cold -0.01 -> -0.09); seeds 3000-3019: below 0 3 -> 5, mean +0.152 -> +0.140 (Shirt @1% "
            "cold +0.04 -> -0.09, spam+exmh @1% cold +0.05 -> -0.05, Bag @5% cold +0.27 -> +0.19): not kept. The "
            "few-percent concepts it was meant for moved by seed noise (Shirt @5% cold +0.13 -> +0.11, spam @5% "
            "cold +0.20 -> +0.24, spamassassin-talk @2.8% +0.15 -> +0.12). 2026-12-05, two softenings rechecked with "
            "today's strategy at the reported budget (seeds 1000-1019, validation, budget 500, the 43 + 10 settings; "
            "rule written first: no more settings below 0, a mean at least 0.005 higher, no prompt floor newly under "
            "95%; the stored arm of today reproduced, random's areas identical in 53 of 53): isolated first only once "
            "two batches' worth of ratings hold no positive: below 0 2 -> 2, mean +0.367 -> +0.354 (spam @1% cold "
            "+0.04 -> +0.15, Shirt @natural cold -0.00 -> +0.09; Bag @1% cold +0.80 -> +0.57, Shirt @1% cold +0.19 "
            "-> +0.02, spam @1% noisy cold +0.27 -> +0.10); every other pick isolated-first after an empty batch: "
            "below 0 2 -> 2, mean +0.367 -> +0.365 (spam @1% cold +0.04 -> +0.19, spamassassin-talk @2.8% cold "
            "+0.26 -> +0.31; Shirt @1% cold +0.19 -> +0.10, spam+exmh @1% cold +0.06 -> -0.02): neither kept"},
    {"parameter": "adaptive strategy: tried and not kept (2026-12-01)", "value": None,
     "how": "seeds 1000-1019, same protocol. Before the head has signal, every task and start, dev nALC median / mean / settings below 0: "
            "cluster picks (kept) +0.211 / +0.299 / 6; uniform picks instead (clusters=1) +0.171 / +0.278 / 5; half of "
            "the batch uniform +0.204 / +0.290 / 6; the most typical row of each cluster (TypiClust-like) +0.204 / "
            "+0.273 / 8. Clusters win where the concept is a region of its own (Bag @5% cold +0.63 against +0.06 "
            "with uniform picks) and lose where it is not (Shirt @5% cold +0.05 against +0.27). Top picks sent to "
            "clusters once the head expects them to miss (mean probability below 0.5 / 0.2 / 0.1; meant for a mixed "
            "concept's second kind): +0.223 / +0.246 / 9, +0.223 / +0.297 / 5, +0.223 / +0.298 / 7; Trouser+Bag @1% "
            "example +0.07 -> +0.26 / +0.19 / +0.13, but spam @1% b10 prompt +0.69 -> +0.37 at 0.5 (the prompt's "
            "top picks hit while the head calls them unlikely) and spam @5% cold +0.15 -> -0.17 at 0.2"},
    {"parameter": "adaptive strategy: cluster picks in proportion to cluster size (tried 2026-12-01, not kept)",
     "value": None,
     "how": "before the head has signal, the next cluster the one with the fewest (picks + 1) / size ** alpha (0: the "
            "least-rated, kept; 1: in proportion to size, a stratified uniform sample). Rule written first: fewest "
            "settings below 0 on seeds 1000-1019, then the mean, confirmed on fresh seeds. alpha 0 / 0.5 / 1: median "
            "+0.265 / +0.250 / +0.250, mean +0.303 / +0.170 / +0.171, below 0: 4 / 8 / 8. Size-weighted picks help "
            "where the concept is not a region of its own (Shirt @natural cold -0.01 -> +0.31, Shirt @5% cold +0.05 -> "
            "+0.23) and ruin it where it is (Bag @natural cold -0.13 -> -3.88, Bag @5% cold +0.63 -> -0.70): 0 kept"},
    {"parameter": "adaptive strategy: stale when the head's picks do no better than the uniform picks "
                  "(tried 2026-12-01, not kept)",
     "value": None,
     "how": "with 10% flipped ratings a flipped negative among the latest 40 own ratings keeps the head in charge "
            "forever (Bag @1% noisy cold: 0 true positives in 200 labels on the dev seeds, random 2). Candidate: "
            "stale when (own positives in the latest 40 + 0.5) / 41 <= the uniform picks' Jeffreys prevalence. Rule "
            "written first: seeds 1000-1019 (prompt_weight 30 in both arms), no more settings below 0, mean at most "
            "0.01 lower and one of them better; then fresh seeds. Today's rule / candidate: below 0 4 / 6, mean "
            "+0.301 / +0.300 (Bag @1% noisy cold -0.16 -> -0.07, but Shirt @1% cold +0.07 -> -0.02, spam @1% noisy "
            "cold +0.01 -> -0.04): not kept"},
    {"parameter": "adaptive strategy: half of each batch uniform while cold, after the first batch (tried 2026-12-02, "
                  "not kept)", "value": None,
     "how": "why: in the table's cold starts the strategies that fall back to random picks beat the cluster picks on "
            "spam @1%, spam+exmh @1% and Shirt @1% (+0.09 to +0.16 against -0.24 to +0.05) and lose by far on Bag @1% "
            "and Trouser+Bag (+0.07 against +0.82). Candidate: while the head has no signal and some rating exists, "
            "at least ceil(k / 2) picks uniform (recorded as the uniform draw), the rest cluster picks as today. Rule "
            "written first: seeds 1000-1019 (validation, budget 200) on the 43 + 10 development settings, no more "
            "settings below 0 than today, a mean at least today's - 0.005 and a mean over the 22 cold settings at "
            "least 0.02 higher; then fresh seeds. Today / candidate: below 0 6 / 5, mean +0.312 / +0.311, cold mean "
            "+0.175 / +0.174 (spam @1% cold -0.05 -> +0.28, but Shirt @1% cold +0.12 -> +0.02, spam @1% noisy cold "
            "+0.18 -> +0.07, Bag @1% noisy cold -0.06 -> -0.13): fails the cold mean, not kept"},
    {"parameter": "head: a noise-aware loss (tried 2026-12-01, not kept)", "value": None,
     "how": "P(rated positive) = eps + (1 - 2 eps) sigmoid(logit), so one flipped rating's pull is bounded (meant for "
            "the noisy 1% settings, where flipped negatives lead the head). Rule written first: eps among 0.02 / 0.05 "
            "/ 0.1 on seeds 1000-1019 (validation, budget 200, prompt_weight 30) by fewest settings below 0, then the "
            "mean; no more settings below 0 than eps 0 (4) and a mean at most 0.01 lower. eps 0.02: below 0 5, mean "
            "+0.284 against +0.301 (the first positive of a cold start pulls less: spam @1% cold +0.21 -> -0.01, "
            "Bag @1% cold +0.39 -> +0.01). eps 0.05 and 0.1 explain a 1% concept away as label noise: the full-pool probe "
            "fitted with them scores AP 0.09-0.30 on 11 and 13 of the 1% settings, whose areas then cannot be "
            "normalised: not kept"},
    {"parameter": "head: its L2 pull measured in the pool's own metric (tried 2026-12-01, offline, not kept)",
     "value": None,
     "how": "the head fitted on x S^a instead of x, S the pool's covariance scaled to trace d (the unlabeled pool is "
            "free, and few-shot learners often whiten with it). First an offline check, before any loop run: one "
            "example plus 10 / 30 / 100 / 300 random ratings, seeds 1000-1002, validation split, every clean task, "
            "median AP. Whitening (a = -1/2, S shrunk halfway or a fifth of the way to the identity) lowered it in 41 of the "
            "44 task x size cells halfway (Bag @5% at 10 labels 0.90 -> 0.38 / 0.28, spam @natural 0.83 -> 0.50 / "
            "0.43; the other three rose by at most 0.02). The other way, a = 1/4 and 1/2 "
            "(the pool's main directions weigh more), helped shirts (@1%, 10 labels: 0.25 -> 0.29 / 0.33) and spam "
            "@natural early (0.83 -> 0.89 / 0.88) but hurt the rare and mixed concepts (Bag @1% at 10 labels 0.86 -> "
            "0.82 / 0.49, at 100 labels Trouser+Bag @1% 0.78 -> 0.66 / 0.54 and spam+exmh @1% 0.58 -> 0.55 / 0.48): no "
            "exponent is better across concepts, so it was not run through the loop: not kept"},
    {"parameter": "head: ratings balanced by sign (tried 2026-12-02, not kept)", "value": None,
     "how": "each rating of sign s weighs n / (2 n_s) once both signs are rated, so the few positive ratings of a "
            "rare concept weigh as much as the many negatives (the prompt and the background unchanged; the "
            "full-pool probe unchanged). Rule written first: seeds 1000-1019 (validation, budget 200) on the 43 + 10 "
            "development settings, no more settings below 0 than today (6) and a mean at least 0.01 higher; then "
            "fresh seeds. Today / candidate: below 0 6 / 5, mean +0.312 / +0.300, cold mean +0.175 / +0.189. It "
            "helps some cold starts (Trouser @natural cold +0.12 -> +0.38, Shirt @natural cold -0.08 -> +0.01) and "
            "costs the starts with a prompt or an example (spam @5% b10 prompt +0.46 -> +0.32, Bag @natural b10 "
            "example +0.32 -> +0.17, Shirt @1% b25 example +0.12 -> -0.03) and soft ratings (spam @5% soft cold "
            "+0.32 -> +0.10): fails the mean, not kept. Balancing only cold starts is no rule the backend can follow: "
            "an example is an ordinary positive rating there"},
    {"parameter": "head: each rating also labels its nearest unrated tasks (tried 2026-12-05, not kept)", "value": None,
     "how": "one-hop label propagation, a use of the unlabeled pool the head lacked: a rating of target t also adds "
            "t to its 10 nearest unrated pool tasks at a tenth of its weight (the prompt, the background and the "
            "full-pool probe unchanged). Offline first (seeds 1000-1002, validation split, an example or the prompt "
            "plus 0 / 10 / 30 / 100 / 300 random ratings, 15 tasks, 95 cells, median AP): up by more than 0.01 in 56 "
            "cells, down in 7, mean +0.019 (Bag @natural from the example alone 0.69 -> 0.78, spam @5% prompt at 100 "
            "ratings 0.73 -> 0.82; spam @1% example 0.51 -> 0.47); with 5 or 20 neighbours, half or twice the weight, "
            "or positive ratings alone, the mean was +0.006 to +0.021 with 2 to 20 cells down. One row per rating holding its neighbours' mean (weight 1) scored the same offline (53 up "
            "/ 7 down, +0.019) at a tenth of the rows, and is the form run through the loop. Rule written first (as "
            "positive_balance's): seeds 1000-1019, validation, budget 500, 43 tuned + 10 development settings, "
            "against the stored arm of today's default (random runs with the candidate head too): below 0 2 -> 2, "
            "mean +0.372 -> +0.362, median +0.358 -> +0.351: fails, not kept, no fresh-seed run. Why: it helps "
            "random's ratings more than the default's. On the 43 tuned settings random's median area rose in 24 and "
            "fell in 10 (mean +0.011), the default's rose in 18 and fell in 17 (mean -0.003). The neighbours of near-W "
            "picks are tasks the head already scores alike, and a flipped or soft rating spreads to ten tasks (spam "
            "@5% soft cold +0.39 -> +0.11, Bag @1% noisy cold +0.04 -> -0.11). The normalised area is the default's "
            "lead over random with the same head, so a head that learns more from any ratings does not raise it by "
            "itself"},
    {"parameter": "adaptive strategy: boundary picks drawn at random by their uncertainty (tried 2026-12-04, not "
                  "kept)", "value": None,
     "how": "the oracle reference leaves room where both signs are rated (Bag @natural example, Shirt @1% "
            "example), and the greedy boundary batch takes the k tasks nearest the boundary, which may be alike. Candidate: stochastic batch "
            "acquisition (Kirsch et al., TMLR 2023): the boundary picks drawn without replacement with probability "
            "proportional to (p(1-p))^(1/T) (Gumbel top-k), T = 1 (the paper's default) or 0.25; the top, uniform "
            "and cluster picks unchanged. Rule written first: seeds 1000-1019 (validation, budget 500), the 43 "
            "settings, no more settings below 0 than today, a mean at least 0.005 higher, no prompt floor newly "
            "under 95%; the best passing value then on fresh seeds 3000-3019. Today / T = 1 / T = 0.25: below 0 "
            "2 / 2 / 1, mean +0.376 / +0.271 / +0.344, median +0.331 / +0.223 / +0.309, prompt floors all >= 95%. "
            "It helps where the oracle pointed on shirts (Shirt @1% b10 example +0.17 -> +0.21 / +0.33, b25 +0.36 -> "
            "+0.48 / +0.51) and on bags at 1% with flipped ratings, cold (+0.04 -> +0.30 / +0.21), and costs nearly "
            "everything else (Bag @5% b25 example +0.62 -> +0.00 / +0.53, Bag @1% b10 example +0.83 -> +0.57 / "
            "+0.63, spam @natural b10 prompt +0.30 -> +0.11 / +0.19): fails the mean at both values, not kept, no "
            "fresh-seed run (how alike the greedy batches are was not measured)"},
    {"parameter": "selection.boundary_per_cluster", "value": False,
     "how": "added 2026-12-04, off: it passed its rule on two development seed sets of the tuned concepts and "
            "did not carry over to the held-out concepts (below). Why: the stochastic "
            "boundary above spread the boundary picks by chance and lost; Cluster-Margin (Citovsky et al. 2021) "
            "spreads them by the pool's own clusters. Candidate: the boundary picks by |logit| ascending, at most one "
            "per k-means cluster (the strategy's 100) and none in a cluster the batch's top picks hold, the closest "
            "others once every cluster has one; top, uniform and cluster picks unchanged. Rule written before its "
            "runs: seeds 1000-1019 (validation, budget 500), the 43 settings, no more settings below 0 than today, a "
            "mean at least 0.005 higher, no prompt floor newly under 95%; then the same on fresh seeds 3000-3019. "
            "Today / candidate, seeds 1000-1019: below 0 2 / 1, mean +0.376 / +0.408, median +0.331 / +0.378, worst "
            "prompt floor 0.95 / 1.00 (Bag @natural b25 example +0.20 -> +0.62, Bag @5% b25 example +0.62 -> +0.82, "
            "Bag @1% noisy cold +0.04 -> +0.28, Shirt @5% cold +0.11 -> +0.23; Shirt @5% b25 example +0.50 -> +0.43, "
            "spam @1% noisy cold +0.27 -> +0.21). Seeds 3000-3019: below 0 1 / 0, mean +0.370 / +0.400, median "
            "+0.319 / +0.395, worst prompt floor 0.95 / 0.95 (Bag @natural b10 / b25 example +0.33 / +0.23 -> +0.57 "
            "/ +0.63, Bag @5% b10 example +0.51 -> +0.71, Trouser+Bag @1% example +0.19 -> +0.26; Shirt @natural b10 "
            "example +0.29 -> +0.16, spam+exmh @1% prompt +0.54 -> +0.47, tops example +0.13 -> +0.07): passed both. "
            "Then, the same day, both arms on the reported seeds 0-19 (test split; `--strategies adaptive` with and "
            "without `--selection '{\"boundary_per_cluster\": true}'`, each with random; the arm without it reproduced "
            "the committed table but for a few seeds of 2 settings). Tuned concepts: median +0.324 -> +0.345, mean "
            "+0.352 -> +0.381, below 0 2 -> 1, goal 4 met (spam @1% noisy prompt 85% -> 95% of seeds), goal 2 9 of 13 "
            "both (Bag @natural / @5% b25 example +0.07 / +0.44 -> +0.67 / +0.72; Shirt @natural noisy cold +0.20 -> "
            "+0.06, spam @1% b25 prompt +0.71 -> +0.65). Held-out concepts (`--task-set heldout`): median +0.381 -> "
            "+0.364, mean +0.307 -> +0.295, below 0 2 -> 2 (footwear @natural example -0.35 -> -0.41), goal 2 6 -> 5 "
            "of 12 (Sneaker @1% example 10 -> 15 labels, 12 allowed; Sandal+Dress @1% example 210 -> 240, cold 295 -> "
            "370). Development concepts, looked at afterwards (`--task-set development`, seeds 1000-1019, "
            "validation): median +0.374 -> +0.334, mean +0.326 -> +0.346, below 0 0 -> 0 (fork @natural prompt +0.10 "
            "-> +0.21, Trouser @natural example +0.53 -> +0.62; T-shirt @natural example +0.38 -> +0.32). The gain "
            "is the distinct image concepts started from an example; on concepts no rule was judged on it is even "
            "or a little worse, so it stays off. Its rule counted only the tuned concepts' 43 settings; a next "
            "rule should count the development concepts' 10 as well, as the cluster-order rules of 2026-12-02 did. "
            "2026-12-05, rechecked with positive_balance 0.3 (its first check ran with 0.5), under a rule written "
            "before the runs: seeds 1000-1019 (validation, budget 500) on the 43 + 10 settings against today's "
            "stored arm (random's areas identical in 53 of 53), no more settings below 0, a mean at least 0.005 "
            "higher, no prompt floor newly under 95%; then fresh seeds 3000-3019; then the held-out concepts. Seeds "
            "1000-1019: below 0 2 -> 1, mean +0.372 -> +0.404, median +0.358 -> +0.367 (Bag @natural b25 example "
            "+0.20 -> +0.62, Shirt @1% b10 example +0.17 -> +0.30; Trouser+Bag @1% example +0.33 -> +0.25), but "
            "the development concept spamassassin-talk @natural with a prompt kept its floor in 45% of seeds (85% "
            "today), which the rule as written missed (that floor was already under 95%); so a condition was "
            "added before the next run, in the stricter direction only: no prompt floor falling by more than 0.10. "
            "Seeds 3000-3019: below 0 1 -> 1, mean +0.365 -> +0.393, median +0.336 -> +0.360, spamassassin-talk's "
            "floor 0.80 -> 0.35: not kept. Every floor miss of the candidate there, on both seed sets, is at 10 "
            "labels: the prompt's first batch, made before any rating, whose boundary picks it spreads over clusters. "
            "So a second candidate, under a rule written before its runs: the spread only once some task is rated "
            "(a prompt's first batch keeps the closest picks; an example's first batch spreads), judged on seeds "
            "1000-1019 and on fresh seeds 7000-7019 (both arms side by side; 3000-3019, where the diagnosis came "
            "from, not used) with the four conditions above, then on the held-out concepts (seeds 0-19, test): no "
            "more settings below 0 and a mean lower by at most 0.005 than the committed report's. Seeds 1000-1019: "
            "below 0 2 -> 1, mean +0.372 -> +0.403, no floor lower (spamassassin-talk 0.85 -> 0.85). Seeds "
            "7000-7019: below 0 1 -> 1, mean +0.337 -> +0.376, median +0.294 -> +0.328, no floor lower (Bag @natural "
            "b25 example -0.17 -> +0.68, Trouser+Bag @1% example +0.16 -> +0.26 and cold +0.33 -> +0.43; Shirt "
            "@natural b10 example +0.29 -> +0.20, tops cold +0.00 -> -0.02). Held-out concepts: below 0 2 -> 2, "
            "mean +0.315 -> +0.301, median +0.407 -> +0.402 (razor-users @1% prompt +0.69 -> +0.58, RPM mail "
            "@natural / @1% prompt +0.45 / +0.63 -> +0.40 / +0.59, razor+rpm @1% cold +0.14 -> +0.09; Pullover @1% "
            "noisy cold +0.08 -> +0.14): fails, not kept. Twice now the spread boundary has gained on the tuned and "
            "development concepts and lost on the held-out ones, here on the text concepts started from a prompt"},
)


# How each tunable constant of the estimators and the stopping rule was chosen, on development seeds
# (1000 and up) of the same tasks; the reported seeds are 0-19. "Dev48": seeds 1000-1005 x the 8 tasks,
# adaptive strategy, 2000 labels, the estimators rerun at the 10 checkpoints on the saved ratings and
# draws (coverage / mean width over all checkpoints).
EVALUATION: tuple[dict, ...] = (
    {"constant": "core.evaluation.STRATA_PER_SIDE", "value": 1,
     "how": "development seeds 1000-1002 on spam @5%, Bag @1%, Shirt @5%, Bag @natural, 1000 labels, nearest + "
            "uniform stand-in strategy (load ~4): coverage / mean width of the head's recall 0.88 / 0.37 with 1 "
            "stratum per side, 0.58 / 0.33 with 2, 0.38 / 0.29 with 3; AP 0.74 / 0.55 / 0.34; precision 0.71 / "
            "0.63 / 0.61. Rechecked on Dev48: 2 per side covers the head's recall 0.60 and AP 0.52 (1: 0.92, 0.78)"},
    {"constant": "core.evaluation.PRIOR (the head's score strata)", "value": "jeffreys",
     "how": "first runs (stand-in strategy): the flat prior covers the labeling's recall 0.91 (Jeffreys 0.96) but the "
            "head's recall 0.59 with 1 stratum per side (Jeffreys 0.88). Rechecked on Dev48 (adaptive): flat covers "
            "the positives in the pool 0.950 at mean width 705 (Jeffreys 0.967 at 599): it reaches the goal band's "
            "edge only by shifting the interval up, wider, which would also delay the target rule (the pool's prior: "
            "POOL_PRIOR); the head's recall 0.56 and AP 0.43 with flat (Jeffreys 0.92, 0.78): the head's score "
            "strata keep Jeffreys. 2026-12-04, below the threshold only, the pool's Beta(1/2, 5) (why: at 100-200 "
            "labels on 1% concepts the AP interval misses at most seeds; on Bag @1%, seeds 1000-1003, its median "
            "was 0.38-0.49 for a true AP of 0.97-1.00, the stratum below the threshold, ~20 audit draws without a "
            "hit among ~4,400 unseen tasks, being given ~100 unseen positives). Rule written first: on seeds "
            "1000-1005 (the 8 tasks, 20-1000 labels, snapshots re-estimated) AP coverage in the band with fewer "
            "(task, checkpoint) cells under 0.7, the head's recall in the band or no farther from it; then fresh "
            "seeds. Jeffreys / Beta(1/2, 5) below: AP 0.904 / 0.923 (at 200 labels 0.68 / 0.74; Bag @1% there "
            "0.17 / 0.50), cells under 0.7 3 / 3, recall 0.928 / 0.920: no fewer cells, not kept. Any share prior "
            "leaves 20 draws unable to tell 1 unseen positive in 4,400 from 90: only the head's scores could, and "
            "priors from them failed (MIN_STRATUM_DRAWS below)"},
    {"constant": "core.evaluation.POOL_PRIOR", "value": "few_positives (Beta(1/2, 5))",
     "how": "Dev48, the pool's positives under Beta(1/2, b) priors: coverage / mean width b = 0.5 (Jeffreys) "
            "0.967 / 599, b = 2 0.967 / 494, b = 5 0.938 / 383, b = 20 0.844 / 210; at the checkpoints where the "
            "target rule would say 'reached' the true recall was >= 0.9 in 10/10, 10/10, 11/11, 15/15. b = 5 is "
            "the only one in the goal band. Jeffreys put the truth in the lowest fifth of the posterior at 220 of "
            "480 checkpoints (117 with every positive already found): its half a pseudo-positive over thousands "
            "of unseen tasks pulls the count up while the audit sample is thin. Rechecked on Dev48 after the prompt became 20 "
            "ratings (2026-12-01): b = 5 / 6 / 8 / 10 / 12 cover 0.954 / 0.950 / 0.944 / 0.942 / 0.938 (target rule safe "
            "at all 12-13 checkpoints where it fires). Per task the coverage is 0.98-1.00 everywhere but spam @natural "
            "(0.82 to 0.75): a larger b lowers the total only by under-covering the common concept further, so b was not "
            "moved to the band's edge"},
    {"constant": "core.evaluation.POOL_PRIOR: an equal mixture of Beta(1/2, 5) and Jeffreys",
     "value": "tried 2026-12-02, not kept",
     "how": "Why: spam @31% rerun on seeds 20-59 covered 80%, short mostly at 20-300 labels, where the audit draws "
            "are few and Beta(1/2, 5) pulls the count down (the draws there hit positives as uniform draws should). A "
            "mixture (normalised beta-binomials) moves its weight to Jeffreys once draws show many positives. Rule "
            "written first, on Dev48: overall coverage within the band, spam and bags at natural prevalence both "
            "higher, the target rule never wrong, 1% widths at most 10% wider. Dev48 with today's code: Beta(1/2, 5) "
            "0.956 overall (spam @natural 0.833, Bag @natural 0.850), the mixture 0.963 (0.850, 0.883), the target "
            "rule right at all 11 checkpoints where it fires with both, widths +0.3-0.6%: it fails the band, so "
            "nothing changed. An interval from 'all found' upwards cannot miss on a rare concept, and that 100% keeps "
            "any prior that helps the common concepts out of the band"},
    {"constant": "core.evaluation.POOL_PRIOR: a prior from the current head's probabilities",
     "value": "tried 2026-12-03, not kept",
     "how": "Why: Beta(1/2, 5) covers rare concepts' positives ~100% and common ones ~80%; the head knows roughly how "
            "common its concept is. Prior Beta(w m, w (1 - m)), m = the head's mean probability over the unseen tasks "
            "(clipped half a task from 0 and from all), alone for w = 2, 5, 10, 20 or mixed 50/50 with Beta(1/2, 5). Rule "
            "written first: on Dev48 overall coverage in [0.85, 0.95] and spam and Bag @natural each >= today - 0.02; "
            "the closest to 0.90 then needs the target rule right in >= 95% of its firings on a full dev simulation "
            "and the synthetic unit test (intervals of the positives, 200 seeds) still passing. Dev48 coverage overall "
            "(spam @natural, Bag @natural): today 0.958 (0.850, 0.850); alone w = 2 0.758, 5 0.887 (0.950, 0.917), 10 "
            "0.946 (0.967, 0.900), 20 0.919 (0.950, 0.883); mixtures 0.952-0.979 (out of the band). w = 5 went on and "
            "failed the synthetic test, with a 1-D logistic head refit on each run's rated tasks standing in for the "
            "head: coverage at 20% / 5% / 5% with 3 draws per batch 0.775 / 0.490 / 0.485 (today 0.940 / 0.990 / "
            "0.980; w = 10: 0.890 / 0.770 / 0.635, w = 20: 0.945 / 0.915 / 0.770). Dev48's head over-counts the "
            "unseen positives (at 50-300 labels the median sum of its probabilities over the unseen tasks is 4-22 times the unseen positives + 1 on the 1-5% concepts, 1.1-1.4 times on the common ones), which made it look safe there; "
            "a head that is calibrated puts m near a small true share, and Beta(w m, .) with w m << 1 piles its mass "
            "on 'none left', which the thin audit sample cannot overturn. Nothing changed"},
    {"constant": "core.evaluation.POOL_PRIOR: a prior near uniform over the share's order of magnitude",
     "value": "tried 2026-12-01, not kept",
     "how": "Beta(a, 1) with small a (density ~ share ** (a - 1)). Rule fixed before the development runs: among the "
            "priors whose coverage of the pool's positives is in the goal band and whose target rule is right in >= "
            "95% of the development runs where it fires (checked after every batch, as the service does), the one that "
            "fires most. Dev48 at the 10 checkpoints, coverage / checkpoints where the target rule says 'reached' / of "
            "them truly reached: a = 0.15 0.890 / 48 / 47, 0.2 0.927 / 38 / 37, 0.25 0.946 / 27 / 27, 0.3 0.958 / 23 / "
            "23, 0.5 0.965 / 12 / 12 (Beta(1/2, 5): 0.954 / 12 / 12). Full simulation on seeds 1000-1005 (48 runs): "
            "Beta(1/2, 5) coverage 0.954, target rule fired in 12 runs, right in 100%, median 1800 labels; a = 0.15 "
            "0.890, 20 runs, 85%, 1060; a = 0.2 0.927, 20 runs, 95%, 1285; a = 0.25 0.946, 18 runs, 94%, 1400. a = 0.2 "
            "passed the rule, but the extra stops are on common concepts (Bag @natural: fired 6/6, right 83%; 3/6, "
            "100% before), never on the 1% ones, and the unit test of a synthetic loop at 20% prevalence with one "
            "audit pick per batch (tests/unit/test_evaluation_estimators.py, 200 seeds) fails: coverage 0.755 (a = "
            "0.25: 0.805, a = 0.3: 0.860; Beta(1/2, 5): 0.940). With a thin audit sample the prior drags a common "
            "concept's count down and the target rule stops early: not kept"},
    {"constant": "core.evaluation.PRIOR above the head's threshold (precision)", "value": "jeffreys, as below it",
     "how": "Dev48 (2026-12-01), a prior leaning to positives on the side the head calls positive, Beta(a, 1/2) for "
            "a = 1/2 (Jeffreys), 1, 2, 3, 4, 5: head precision covered 0.985 / 0.979 / 0.968 / 0.955 / 0.942 / 0.925 "
            "(zero-width intervals left out: 0.967 / 0.953 / 0.930 / 0.902 / 0.874 / 0.834); the head's recall and AP "
            "moved by at most 0.016. The over-coverage sits at the 80 checkpoints with 1-100 unseen tasks above the "
            "threshold and 0-2 audit draws among them (covered 100%): there the prior is all the interval has. A "
            "leaning prior narrows them but misses where the head over-predicts: with a = 3, spam @natural 0.77 (0.73 "
            "of all tasks at 20 labels). Not kept: no prior fits both, and only more audit draws above the threshold "
            "(a design change) would narrow these intervals honestly"},
    {"constant": "core.evaluation.INTERVAL", "value": "hpd",
     "how": "first runs: the shortest interval is the narrower one for the count of positives (mean width 789 vs "
            "916 for equal tails); coverage of the labeling's recall 0.96 vs 0.92, of the head's recall 0.88 vs 0.85. "
            "Dev48: equal tails cover the positives 0.944 at width 711 (hpd 0.967 at 599), the head's recall 0.905 "
            "(0.918), AP 0.735 (0.777)"},
    {"constant": "core.evaluation.NONLINEAR_INTERVAL (the head's recall and AP on one uncertain stratum)",
     "value": "equal (since 2026-12-04; hpd before)",
     "how": "why: at 100-200 labels on 1% concepts the AP interval missed at most seeds (Bag @1% at 200 labels "
            "15% covered in the reported run). On Bag @1%, seed 1002 at 200 labels, every positive found: the "
            "count of unseen positives below the threshold has its mode at 0 (P 0.074) and the AP there is the "
            "truth, 1.0, but the shortest interval of the AP samples ended at 0.979. The AP falls fast with the "
            "first unseen positives and slowly after, so in AP space the small counts are spread out and the large "
            "ones packed, and the shortest interval drops the small ones; equal tails are the image of the count's "
            "own equal tails (the map is monotone), the shortest interval the image of no interval of the count's. "
            "The precision is linear in its one count (its shortest interval is the count's own): unchanged. Two "
            "rules written first, on snapshots of seeds 1000-1005 (the 8 tasks, 20-1000 labels) re-estimated: "
            "AP coverage in the band with fewer (task, checkpoint) cells under 0.7, the recall and the precision in "
            "the band or no farther from it. Equal tails for every one-stratum interval: AP 0.904 -> 0.941, cells "
            "3 -> 0, recall 0.928 -> 0.933, but the precision 0.957 -> 0.979: rejected. Equal tails for the recall "
            "and AP only, written after that result, so judged on fresh seeds alone, 4000-4005 and 5000-5005: AP "
            "0.886 -> 0.920 and 0.911 -> 0.946, cells under 0.7 3 -> 2 and 2 -> 0 (at 200 labels 0.64 -> 0.91 "
            "and 0.71 -> 1.00), recall 0.934 -> 0.931 and 0.939 -> 0.936: adopted. AP intervals 7-8% wider. The "
            "synthetic test (a calibrated head on a ~1% concept, 60 pools): AP covered 0.88 -> 0.95, recall 0.88 "
            "-> 0.97"},
    {"constant": "core.evaluation.estimate_head: the recall's and AP's interval on two uncertain strata",
     "value": "the range over the densest joint samples, share joint_share (0.742 at 90%)",
     "how": "Why (2026-12-03): per task and checkpoint, the head's recall and AP missed at every seed in places (Bag "
            "@1% recall at 50-100 labels, AP at 100-200: 0-17% covered), hidden in the totals. There both sides of "
            "the threshold still hold unseen tasks, and the shortest interval of the quantity's samples cut off the "
            "joint mode ('hardly a positive left below the threshold'). Development snapshots (seeds 1000-1005, "
            "Dev48): with two uncertain strata the shortest interval covered recall 0.81 and AP 0.81, with one 0.94 "
            "and 0.89. Tried on Dev48: the range over a fixed share of the densest joint samples for every "
            "estimate (shares 0.3-0.8: recall 0.80-0.97, AP 0.82-0.99; a 1-d synthetic loop then covered 0.28-0.47 "
            "with shares 0.4-0.6: rejected), and the range at the chi-square share for any number of strata (recall "
            "0.97, AP 0.99: one stratum over-covered at 0.996). Kept: shortest interval with one uncertain stratum, "
            "range at the chi-square share (no free constant) with two or more. Rule written before the fresh seeds "
            "1012-1017: recall and AP overall in [0.85, 0.95], fewer (task, checkpoint) cells under 0.7, coverage "
            "with two uncertain strata no lower. Coverage / cells under 0.7, before -> after: seeds 1000-1005 recall "
            "0.879 / 9 -> 0.938 / 4, AP 0.870 / 12 -> 0.916 / 5; seeds 1006-1011 recall 0.920 / 7 -> 0.964 / 1 "
            "(over the band: an earlier rule on these seeds failed it there), AP 0.882 / 11 -> 0.938 / 3; seeds "
            "1012-1017 recall 0.885 / 14 -> 0.946 / 6, AP 0.918 / 9 -> 0.937 / 5 (two uncertain strata: recall 0.795 "
            "-> 0.927, AP 0.914 -> 0.981): kept. Mean width +4-10%. AP with one uncertain stratum still misses on "
            "Bag @1% at 100-200 labels: the AP places a stratum's unseen positives evenly, and a strong head ranks "
            "them high"},
    {"constant": "core.evaluation.PLACEMENT_SLOPE", "value": 0.5,
     "how": "since 2026-12-04 only for a head not fitted on the ratings (no cross-fitted scores given); the service "
            "and the benchmark place by `calibrated_chance` (the record under estimate_head below). Why (2026-12-03): after the joint range above, the AP still missed where every task above the threshold "
            "is rated (one uncertain stratum): it spread the unseen positives below the threshold evenly, and a strong "
            "head's missed positives sit just under it (bags @1% AP at 200 labels covered 15%, razor-users @1% "
            "0%). Candidates: a task's chance sigmoid(shift + slope * the head's log-odds), the shift making the "
            "stratum's sum the sampled count, slope 0 (evenly, today), 0.5, 1, or drawn per sample from {0, .25, .5, "
            ".75, 1} or {0, .5, 1, 1.5, 2}. Rule written before any result: choose on seeds 1000-1011 among those "
            "with AP coverage in [0.85, 0.95] the fewest (task, checkpoint) cells under 0.7, then the narrowest; "
            "adopt if on seeds 1012-1017 its coverage is in the band with fewer such cells than slope 0. Coverage / "
            "mean width / cells under 0.7, seeds 1000-1005: slope 0 0.916 / 0.400 / 5, 0.5 0.927 / 0.386 / 4, 1 "
            "0.927 / 0.371 / 4, the draws up to 1 0.943 / 0.384 / 2, up to 2 0.954 / 0.374 / 1; seeds 1006-1011: "
            "0.938 / 0.406 / 3, 0.936 / 0.393 / 4, 0.938 / 0.377 / 5, 0.965 / 0.392 / 1, 0.968 / 0.383 / 0 (the "
            "drawn slopes over the band on 1000-1011: 0.954 and 0.961). Slope 0.5 chosen (8 cells against 1's 9); "
            "seeds 1012-1017: slope 0 0.937 / 0.392 / 5, 0.5 0.945 / 0.378 / 4: adopted. It narrows the AP "
            "intervals by 3-4% and lifts the weakest checkpoint (200 labels) only a little (0.61 to 0.65 on seeds "
            "1012-1017). An earlier try (Dev48's first run, before the joint range) placed them by score ** p without "
            "the sum's shift and covered 0.76-0.79 against 0.78 evenly (the record below)"},
    {"constant": "core.evaluation.INTERVAL: a mid-p interval", "value": "tried 2026-12-01, not kept",
     "how": "the hpd set of a count's discrete posterior whose last value counts by half (on posterior samples: "
            "the rarer end value dropped when not needed). Rule written before the run: more of the five quantities "
            "in the goal band wins, a tie keeps hpd. Dev48 rerun with the adaptive first-batch change (0728500): the "
            "hpd sets of the pool's positives hold 0.901 of the posterior on average where positives are still "
            "unfound, so the rare concepts' over-coverage (0.97-1.00) is the posterior's width, not whole values "
            "overshooting 90%. Coverage with hpd / mid: positives 0.956 / 0.956, head precision 0.991 / 0.991 (107 "
            "intervals), recall 0.883 / 0.883, AP 0.892 / 0.892: a tie, hpd kept"},
    {"constant": "core.evaluation.estimate_head: rated tasks placed in the score strata by cross-fitted scores",
     "value": "tried 2026-12-04, not kept",
     "how": "why: the head's recall interval on spam @natural covered 0.65 at 200-300 labels (seeds 1000-1019, "
            "300 labels), every miss below it. The strata place every rated task by the current head, which "
            "was fitted on its rating: audit-drawn positives sat above the threshold 97% of the time against 76-88% "
            "for unseen ones, and 1.3% of the drawn tasks below it were positive against 5-10% of the unseen ones. "
            "A drawn task's stratum depends on its own label, so the draws within a stratum are no simple random "
            "sample of it and the positives left below the threshold are under-counted. Candidate: place rated "
            "tasks by 10-fold cross-fitted scores (the head's recipe refit without the fold, warm-started from the "
            "current head; the 11 refits of a checkpoint took 0.1-0.4 s of CPU), unseen tasks by the current head as before; AP "
            "placement slope 0.5, 1 or 2. Rule written first: Dev48 re-estimated (8 tasks x seeds 1000-1005, 20-1000 "
            "labels), head precision, recall and AP each in [0.85, 0.95] or no farther from it than today, and fewer "
            "(task, checkpoint) cells under 0.7; then fresh seeds. Today / cross-fitted (slope 0.5): precision "
            "0.957 / 0.967, recall 0.933 / 0.960 (spam @natural 0.79 / 0.94), AP 0.941 / 0.900, cells under 0.7 "
            "3 / 9 (slope 1: AP 0.911, 8 cells; slope 2: 0.911, 9): fails, not kept. With the "
            "counts right, the AP is under-estimated (truth above the interval): on spam @natural at 200 labels even "
            "the true counts placed with slope 0.5 give an AP of 0.90-0.91 for a true 0.96-0.97 (slope ~4 matches), "
            "so today's AP covers because two errors cancel (too few positives below the threshold, spread too "
            "evenly). Placement fitted to the rated tasks' cross-fitted scores, looked at on the same Dev48 runs "
            "(not judged): a Platt slope (median 2.2) AP 0.896, 7 cells; isotonic calibration AP 0.926, 6 cells. "
            "Cells of 6 runs are a coarse test: an exact 90% interval falls under 0.7 in one cell in nine "
            "(binomial), and counted by checkpoint over the tasks the cross-fitted recall is over the band at 6 of "
            "8 checkpoints (0.96-1.00; today out of it at 2). Looked at afterwards on fresh seeds 4000-4005 (not judged), "
            "checkpoints out of the band, today / cross-fitted / cross-fitted with isotonic placement: precision "
            "3 / 6 / 6 (pooled 0.910 / 0.951 / 0.951), recall 3 / 0 / 0 (0.931 / 0.923 / 0.923), AP 3 / 6 / 2 (0.920 / "
            "0.879 / 0.879). The bias is real and still in the reported intervals of the "
            "common concepts (spam @natural head recall 84%); what is left is a placement model that holds with "
            "the counts right. A second candidate, cross-fitted strata with that isotonic placement, under a "
            "rule written before its run and judged on seeds 5000-5005 alone (fewer checkpoints out of the band "
            "summed over the three, each pooled coverage in the band or no farther, spam @natural recall higher): "
            "out of the band 13 -> 11, precision 0.947 -> 0.949, recall 0.936 -> 0.936, AP 0.946 -> 0.912, spam "
            "@natural recall 0.854 -> 0.875: passed; counted the same way it was 8 -> 16 on Dev48 and 9 -> 8 on "
            "seeds 4000-4005. On a synthetic loop whose head learns its ratings (1,000 tasks, 64 dimensions, 30% "
            "positives, 12 batches of 10 with 3 audit picks) the recall covered 0.05 today and 0.90 with "
            "cross-fitted strata (20 seeds); with 1,500 tasks (64 or 96 dimensions, three noise levels, 30 seeds) "
            "0.03-0.30 against 0.67-0.83, its misses still above the truth. Adopted 2026-12-04 (decided before the reported runs, which were then "
            "made with it); the evidence on the band count is mixed, and it removes a mechanism that makes the "
            "intervals wrong. CROSS_FIT_FOLDS = 10 was fixed beforehand, not tuned (5 folds covered spam @natural's "
            "recall 0.925, 10 folds 0.908, on seeds 1000-1019 at 20-300 labels)"},
    {"constant": "core.evaluation.HOLD_EDGES (an interval on one uncertain stratum keeps the edge its draws "
                 "cannot rule out)", "value": True,
     "how": "since 2026-12-04. Why: the held-out report's AP covered 77% at 100 labels, razor-users @1% 0 of 19. "
            "Looked at on that task's seeds 0-3 (a diagnosis; nothing was tuned on it): every positive found, every "
            "task above the threshold rated, one uncertain stratum below it (~4,000 unseen tasks, 12 audit draws, "
            "none positive). The Jeffreys posterior puts P(no unseen positive there) at ~4.5%, under the equal "
            "tails' 5%, so the AP's interval ended at its value for one or two unseen positives (0.21-0.96 for a "
            "true 0.985) and the recall's too (0.06-0.95 for 0.976); at 200 labels (22 draws) it covered. "
            "Candidate: such an interval also holds the value at no unseen positive in that stratum when none of "
            "its draws was positive (every unseen task positive when every draw was): the Jeffreys interval's "
            "limit at x = 0 (x = n) of Brown, Cai & DasGupta (2001); no free constant. Rule written before its "
            "run, judged on fresh seeds 6100-6105 alone (the 8 tuned tasks and the 8 development concepts of "
            "`--task-set development`, 20-1000 labels, snapshots re-estimated both ways): checkpoints out of "
            "[0.85, 0.95] summed over precision, recall and AP no more than today's, each pooled coverage in the "
            "band or no farther. Today / with edges: out of the band 11 / 11; precision 0.925 / 0.925, recall "
            "0.952 / 0.952, AP 0.925 / 0.925, every checkpoint's coverage the same; mean width recall 0.533 / 0.550, "
            "AP 0.524 / 0.552 (seeds 6000-6005, development concepts, shown: the same, 10 / 10). Passed, and "
            "adopted for the mechanism, not for a measured gain: on development runs the edge was already inside "
            "the interval wherever it was the truth. The held-out report's change is no independent evidence (its "
            "failure motivated the candidate)"},
    {"constant": "core.evaluation.calibrated_chance: the AP's placement curve resampled (tried 2026-12-04, not kept)",
     "value": "not kept: one isotonic fit on every rating",
     "how": "Why: the held-out report's AP covered 75% and 82% at 20 and 50 labels, where the placement curve is "
            "fitted on 20-50 rated tasks and its own uncertainty is in no interval. Candidate: R refits of the curve, "
            "each with the rated tasks weighted by one Bayesian-bootstrap draw (Rubin 1981, Dirichlet(1)), AP sample i "
            "placing by curve i mod R; precision and recall untouched. Rule written before its run: R the largest of "
            "400 / 100 / 20 at most 3x today's CPU on the development concepts' seeds 6000-6005 (looked at for cost "
            "only); judged on fresh seeds 6200-6205 alone (the 8 tuned tasks and the 8 development concepts, 20-1000 "
            "labels, snapshots re-estimated both ways): AP checkpoints out of [0.85, 0.95] no more than today's, "
            "each set's pooled AP coverage in the band or no farther, its lowest checkpoint no lower. CPU per estimate "
            "0.233 s today, 0.394 / 0.477 / 0.661 s with R = 20 / 100 / 400: R = 400 (on those seeds AP 0.920 -> 0.930, "
            "mean width 0.536 -> 0.545). Fresh seeds, today / R = 400: tuned tasks AP 0.942 / 0.957 (over the band), "
            "lowest checkpoint 0.83 / 0.83 (20 labels), mean width 0.491 / 0.497; development concepts 0.947 / 0.947, "
            "lowest 0.88 / 0.88, width 0.583 / 0.591; checkpoints out of the band the same; precision and recall "
            "identical. Fails (the tuned tasks' total leaves the band), not kept: the curve's resampling spread adds "
            "1-2% of width, raises the mid checkpoints (300 labels 0.93 -> 0.97) and leaves the early ones where they were"},
    {"constant": "core.evaluation.estimate_head: equal tails for the recall and AP on two uncertain strata "
                 "(looked at 2026-12-04, not judged)",
     "value": "not kept: the range over the densest joint samples stays",
     "how": "The recall covers over the band in both reports (95.2% and 96.5%), most at 20-300 labels, where both "
            "sides of the threshold hold unseen tasks and the interval is the range over the densest joint samples. "
            "Equal tails of the quantity's samples (its marginal credible interval, as with one uncertain stratum), "
            "looked at on the development concepts' seeds 6000-6005: recall 0.935 -> 0.889 (20 labels 0.90 -> 0.76, "
            "200 labels 0.91 -> 0.81), AP 0.920 -> 0.870 (200 labels 0.85 -> 0.75); checkpoints out of the band over "
            "precision, recall and AP 10 -> 14. The joint range's width is doing work there: not run on fresh seeds"},
    {"constant": "core.evaluation.MIN_STRATUM_DRAWS for the precision", "value": "2, as for the AP",
     "how": "Dev48 (2026-12-01, today's head), head precision withheld while the unseen tasks above the threshold "
            "hold fewer audit draws than this: coverage without zero-width intervals / such intervals / withheld: "
            "0: 0.967 / 215 / 0, 1: 0.947 / 131 / 84, 2: 0.935 / 107 / 108, 3: 0.921 / 89 / 126, 4: 0.905 / 74 / 141. "
            "The intervals resting on 0-3 draws covered 100% (mean width 0.54 with none): the prior is all they "
            "have. 1 and 2 are in the goal band; 2 was kept so that one rule (a stratum's estimate needs 2 draws) "
            "serves the precision and the AP, and the page shows instead the bounds the ratings prove (every unseen "
            "task above the threshold negative, or every one positive), which held the truth at all 469 "
            "checkpoints. On the same runs the AP covered 0.799 / 0.870 / 0.886 / 0.895 / 0.899"},
    {"constant": "core.evaluation.MIN_STRATUM_DRAWS for the AP", "value": 2,
     "how": "Dev48 (its first run, before the prompt became 20 ratings), AP coverage (checkpoints with an AP "
            "interval) by the audit draws required in every score "
            "stratum with unseen tasks: 0: 0.777 (475), 1: 0.866 (382), 2: 0.895 (351), 3: 0.898 (325), 5: 0.908 "
            "(303); 2 is the smallest in the goal band (withholding it for the head's recall too would lift that "
            "to 0.966, so recall is not withheld). Tried for the AP on Dev48 and not kept: a prior from the head's "
            "own scores, Beta(w m, w (1 - m)) per stratum (w 0.5-4: AP 0.65-0.79, head recall 0.54-0.82); placing a "
            "stratum's unseen positives by score ** p instead of evenly (p 0.5-2: AP 0.76-0.79); on the first 30 "
            "runs, 2-16 strata per side sharing one prior pseudo-count of positives (AP 0.74-0.58, precision "
            "0.74-0.54)"},
)
