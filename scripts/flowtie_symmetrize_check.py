"""FlowTIE held-out check with and without the 8-fold symmetrisation (docs/methods.md §5).

    python scripts/flowtie_symmetrize_check.py [MODEL]     (MODEL: "default" or a .pt path)

Builds the held-out bank (CeO2, LaAlO3; [001], [110]; 3/10/20/30 nm; 300 kV, 20 mrad, dz 1 nm;
doses ∞ and 1e4; cached in /tmp/ft_heldout_cases.pkl) and prints xc/PSNR vs σV by class.
"""
import sys, pickle, time, math, numpy as np, torch
torch.set_num_threads(1)
from napari_phase.flowtie import evaluate as ev, solve
from napari_phase.physics.metrics import xc, psnr
import os
bp='/tmp/ft_heldout_cases.pkl'
if os.path.exists(bp):
    cs=pickle.load(open(bp,'rb'))
else:
    t0=time.time()
    bank=ev.heldout_bank(thicknesses_nm=(3.0,10.0,20.0,30.0))
    cs=ev.cases(bank, doses=(math.inf,1e4))
    pickle.dump(cs,open(bp,'wb')); print('bank',time.time()-t0)
model=sys.argv[1] if len(sys.argv)>1 else 'default'
orig=solve.predict_net_grid
res={}
for sym in (False,True):
    def pn(*a, **k):
        k['symmetrize']=sym; return orig(*a, **k)
    solve.predict_net_grid=pn
    for s in cs:
        kw=dict(defocus_step_nm=s["dz_nm"], pixel_size_a=s["pixel_size_a"], energy_kev=s["energy_kev"])
        est=solve.flowtie(s['tri'], semiangle_mrad=s['alpha_mrad'], model=model, device='cpu', **kw).phase
        r=ev.score(est,s)
        res[(s['structure'],tuple(s['zone_axis']),round(s['thickness_nm']),str(s['dose']),sym)]=r
solve.predict_net_grid=orig
for sym in (False,True):
    for cls,(lo,hi) in {'thin':(0,8),'mid':(8,15),'thick':(15,100)}.items():
        for z in ((0,0,1),(1,1,0)):
            v=[r for k,r in res.items() if k[4]==sym and lo<=k[2]<hi and k[1]==z]
            print(sym, cls, z, 'xc %.3f psnr %.2f n=%d'%(np.mean([r['xc_sv'] for r in v]), np.mean([r['psnr_sv'] for r in v]), len(v)))
for k,r in sorted(res.items()):
    print(k, round(r['xc_sv'],3), round(r['psnr_sv'],2))
