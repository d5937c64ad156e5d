"""XLA:CPU convolution formulations against ``lax.conv_general_dilated``, per layer shape.

An experiment kept for its numbers (benchmarks/RESULTS.md, "bfloat16 on CPU"): each trunk
convolution of a workload as XLA's convolution, as im2col (the kh*kw shifted slices
concatenated into channels) + one ``dot_general`` (float32 accumulation for bf16), the same
with an optimisation barrier before the dot, as one dot over all taps then shifted adds
(``shiftsum``), and as a kw-tap concat + one dot + kh shifted adds (``rows2``). Times are
process CPU time (all threads), median of 15 alternating runs; on a loaded machine compare
ratios within a line only.

    .venv/bin/python benchmarks/conv_formulations.py st64 0 fwd bf16   # ST alex 64x50 convs 2-4
    .venv/bin/python benchmarks/conv_formulations.py alex64 0 fwd f32  # LPIPS alex 64x50 convs
"""
import time, statistics, sys
import jax, jax.numpy as jnp, numpy as np
from jax import lax
NHWC=("NHWC","HWIO","NHWC")
def conv(x,w,s,p): return lax.conv_general_dilated(x,w,(s,s),((p,p),(p,p)),dimension_numbers=NHWC)
def im2col(x,w,s,p):
    pe=jnp.float32 if x.dtype==jnp.bfloat16 else None
    kh,kw,ci,co=w.shape
    x=jnp.pad(x,((0,0),(p,p),(p,p),(0,0)))
    n,h,ww,_=x.shape
    ho=(h-kh)//s+1; wo=(ww-kw)//s+1
    cols=[x[:,i:i+(ho-1)*s+1:s,j:j+(wo-1)*s+1:s,:] for i in range(kh) for j in range(kw)]
    u=jnp.concatenate(cols,-1)
    return lax.dot_general(u,w.reshape(kh*kw*ci,co),(((3,),(0,)),((),())),preferred_element_type=pe).astype(x.dtype)
def im2col_b(x,w,s,p):
    pe=jnp.float32 if x.dtype==jnp.bfloat16 else None
    kh,kw,ci,co=w.shape
    x=jnp.pad(x,((0,0),(p,p),(p,p),(0,0)))
    n,h,ww,_=x.shape
    ho=(h-kh)//s+1; wo=(ww-kw)//s+1
    cols=[x[:,i:i+(ho-1)*s+1:s,j:j+(wo-1)*s+1:s,:] for i in range(kh) for j in range(kw)]
    u=lax.optimization_barrier(jnp.concatenate(cols,-1))
    return lax.dot_general(u,w.reshape(kh*kw*ci,co),(((3,),(0,)),((),())),preferred_element_type=pe).astype(x.dtype)
def shiftsum(x,w,s,p):
    # all taps in one dot over the padded input, then shifted adds (stride 1 only)
    kh,kw,ci,co=w.shape
    x=jnp.pad(x,((0,0),(p,p),(p,p),(0,0)))
    n,h,ww,_=x.shape
    ho=h-kh+1; wo=ww-kw+1
    wa=w.transpose(2,0,1,3).reshape(ci,kh*kw*co)
    z=lax.dot_general(x,wa,(((3,),(0,)),((),())),preferred_element_type=jnp.float32)
    z=lax.optimization_barrier(z.reshape(n,h,ww,kh*kw,co))
    acc=None
    for i in range(kh):
        for j in range(kw):
            t=z[:,i:i+ho,j:j+wo,i*kw+j]
            acc=t if acc is None else acc+t
    return acc.astype(x.dtype)
def rows2(x,w,s,p):
    kh,kw,ci,co=w.shape
    x=jnp.pad(x,((0,0),(p,p),(p,p),(0,0)))
    n,h,ww,_=x.shape
    ho=h-kh+1; wo=ww-kw+1
    u=lax.optimization_barrier(jnp.concatenate([x[:,:,j:j+wo,:] for j in range(kw)],-1))  # n,h,wo,kw*ci
    wa=w.reshape(kh,kw*ci,co).transpose(1,0,2).reshape(kw*ci,kh*co)
    z=lax.dot_general(u,wa,(((3,),(0,)),((),())),preferred_element_type=jnp.float32)
    z=lax.optimization_barrier(z.reshape(n,h,wo,kh,co))
    acc=None
    for i in range(kh):
        t=z[:,i:i+ho,:,i]
        acc=t if acc is None else acc+t
    return acc.astype(x.dtype)
def im2col_rows(x,w,s,p):
    # only kw taps into channels, then sum over kh of dots
    kh,kw,ci,co=w.shape
    x=jnp.pad(x,((0,0),(p,p),(p,p),(0,0)))
    n,h,ww,_=x.shape
    ho=(h-kh)//s+1; wo=(ww-kw)//s+1
    u=jnp.concatenate([x[:,:,j:j+(wo-1)*s+1:s,:] for j in range(kw)],-1)  # n,h,wo,kw*ci
    acc=None
    for i in range(kh):
        t=jnp.einsum("nhwk,ko->nhwo",u[:,i:i+(ho-1)*s+1:s],w[i].reshape(kw*ci,co))
        acc=t if acc is None else acc+t
    return acc
layers_alex64=[("c1",(100,64,64,3),(11,11,3,64),4,2),("c2",(100,7,7,64),(5,5,64,192),1,2),("c3",(100,3,3,192),(3,3,192,384),1,1),("c4",(100,3,3,384),(3,3,384,256),1,1),("c5",(100,3,3,256),(3,3,256,256),1,1)]
layers_alex256=[("c1",(8,256,256,3),(11,11,3,64),4,2),("c2",(8,31,31,64),(5,5,64,192),1,2),("c3",(8,15,15,192),(3,3,192,384),1,1),("c4",(8,15,15,384),(3,3,384,256),1,1),("c5",(8,15,15,256),(3,3,256,256),1,1)]
vgg=[(64,3,64),(64,64,64),(32,64,128),(32,128,128),(16,128,256),(16,256,256),(8,256,512),(8,512,512),(4,512,512)]
sel=sys.argv[1]
if sel=="alex64": L=layers_alex64
elif sel=="alex256": L=layers_alex256
elif sel=="st64": L=[("c2",(100,15,15,64),(5,5,64,192),1,2),("c3",(100,8,8,192),(3,3,192,384),1,1),("c4",(100,8,8,384),(3,3,384,256),1,1)]
elif sel.startswith("vgg"):
    s=int(sel[3:]); b=int(sys.argv[2])
    L=[(f"v{h}_{ci}_{co}",(b,h*s//64,h*s//64,ci),(3,3,ci,co),1,1) for h,ci,co in vgg]
mode=sys.argv[3] if len(sys.argv)>3 else "fwd"
dt=jnp.bfloat16 if (len(sys.argv)>4 and sys.argv[4]=="bf16") else jnp.float32
rng=np.random.default_rng(0)
for name,xs,ws,s,p in L:
    x=jnp.asarray(rng.normal(size=xs),dt); w=jnp.asarray(rng.normal(size=ws)*0.05,dt)
    fs={"conv":conv,"im2col":im2col,"im2col_b":im2col_b,"shiftsum":shiftsum,"rows2":rows2}
    cs={}
    for k,f in fs.items():
        if mode=="fwd": g=jax.jit(lambda x,w,f=f:f(x,w,s,p))
        else: g=jax.jit(jax.grad(lambda x,w,f=f:(f(x,w,s,p)**2).sum(),argnums=(0,1)))
        cs[k]=g; jax.block_until_ready(g(x,w)); jax.block_until_ready(g(x,w))
    r0=np.asarray(conv(x,w,s,p).astype(jnp.float32)); r1=np.asarray(im2col(x,w,s,p).astype(jnp.float32))
    t={k:[] for k in cs}
    for r in range(15):
        for k in cs:
            t0=time.process_time(); jax.block_until_ready(cs[k](x,w)); t[k].append(time.process_time()-t0)
    m={k:statistics.median(v)*1e3 for k,v in t.items()}
    print(name, xs, ws, " ".join(f"{k}={v:.2f}ms" for k,v in m.items()), "relerr=%.1e"%(np.abs(r0-r1).max()/np.abs(r0).max()), flush=True)
