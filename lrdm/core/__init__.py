"""The mathematics: RDDM schedules, low-rank projection and rank schedules (LRDM), the forward process and
objectives, the model contract (one ``Prediction`` from every network), the sampler, ResShift, the processes
behind one interface, and the networks. Imports only :mod:`lrdm.vocab`, :mod:`lrdm.errors` and
:mod:`lrdm.config` from the rest of the package."""
